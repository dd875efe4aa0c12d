"""PNG pixels through imagecodecs (libpng on zlib-ng) instead of Pillow's PNG decoder.

Why: Pillow's PNG decoder is the slow part of a large PNG's ingest (a 3000x2000 photo: ~210 ms
here, libpng ~95 ms), and nothing can be skipped on decode (no DCT scaling as for JPEG). PNG is
lossless, so both give the same pixels (tests/media/image/test_png.py).

Only the plain case takes this path: 8-bit RGB or RGBA without a ``tRNS`` chunk, and no EXIF
anywhere (``eXIf``, or ImageMagick's text chunk: Pillow reads a late one only by decoding the
whole image). Pillow has already read and bounded the header (``decode_image`` checks the size
before any pixel is decoded); anything else, or any surprise, stays with Pillow.
"""

from __future__ import annotations

import logging

from PIL import Image

log = logging.getLogger("mmserve.media")
_CHANNELS = {"RGB": 3, "RGBA": 4}
_TEXT = (b"tEXt", b"zTXt", b"iTXt")
_MAGICK_EXIF = b"Raw profile type exif"  # a text chunk Pillow reads EXIF (an orientation) from


def fast_png_applies(img: Image.Image, data: bytes) -> bool:
    """Whether ``img`` (opened by Pillow from ``data``, nothing decoded yet) can take the fast path."""
    return img.mode in _CHANNELS and "transparency" not in img.info and not _has_exif(data)


def _has_exif(data: bytes) -> bool:
    """Whether a chunk of the PNG may carry EXIF: ``eXIf``, or a text chunk named as ImageMagick names it.

    Walks the chunk headers (lengths skip the image data), so it reads a few hundred bytes of a
    large file; a file it cannot walk to the end counts as having EXIF (Pillow then decides).
    """
    pos, end = 8, len(data)
    while pos + 8 <= end:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"eXIf" or (kind in _TEXT and data.startswith(_MAGICK_EXIF, pos + 8)):
            return True
        if kind == b"IEND":
            return False
        pos += 12 + length  # length, type, data, CRC
    return True


def decode_png(img: Image.Image, data: bytes) -> Image.Image | None:
    """The pixels of ``img`` (see :func:`fast_png_applies`), or None to let Pillow decode it."""
    try:
        import imagecodecs

        pixels = imagecodecs.png_decode(data)
    except ImportError:
        return None
    except Exception as e:  # libpng refused it: Pillow decides (and words the refusal)
        log.debug("libpng refused a PNG (%s); Pillow decodes it", type(e).__name__)
        return None
    w, h = img.size
    if pixels.dtype.name != "uint8" or pixels.shape != (h, w, _CHANNELS[img.mode]):
        return None
    # shares the array's memory: the resize that follows makes the image the model gets
    return Image.frombuffer(img.mode, (w, h), pixels, "raw", img.mode, 0, 1)
