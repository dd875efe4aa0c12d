"""Encode generated images (Pillow) into the formats the API returns: PNG, JPEG, WebP.

Blocking; callers run :func:`encode_images` (worker threads) rather than the pure function.
"""

from __future__ import annotations

import asyncio
import io
from typing import Literal

from PIL import Image

OutputFormat = Literal["png", "jpeg", "webp"]
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}
ALPHA_FORMATS = frozenset({"png", "webp"})
DEFAULT_COMPRESSION = 100  # OpenAI's default for output_compression: the best quality


def encode_image(image: Image.Image, fmt: OutputFormat, *, compression: int | None = None) -> bytes:
    """One image as ``fmt`` bytes. ``compression`` (0-100) is the JPEG/WebP quality; PNG is lossless.

    An image with alpha keeps it in PNG/WebP and is flattened onto white for JPEG.
    """
    quality = DEFAULT_COMPRESSION if compression is None else compression
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha and fmt in ALPHA_FORMATS:
        image = image.convert("RGBA")
    elif has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba).convert("RGB")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, "PNG", compress_level=6)
    elif fmt == "jpeg":
        # quality 100 with 4:4:4 chroma is the "no compression" end of the scale
        image.save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2, optimize=False)
    elif fmt == "webp":
        image.save(buf, "WEBP", quality=quality, method=4)
    else:  # pragma: no cover - OutputFormat is checked by the API layer
        raise ValueError(f"unsupported output format {fmt!r}")
    return buf.getvalue()


async def encode_images(images: list[Image.Image], fmt: OutputFormat, *, compression: int | None = None) -> list[bytes]:
    """Encode a batch in worker threads, one per image (Pillow's encoders release the GIL), never on the loop."""
    jobs = (asyncio.to_thread(encode_image, im, fmt, compression=compression) for im in images)
    return list(await asyncio.gather(*jobs))
