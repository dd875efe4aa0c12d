"""Decode, validate and bound user images with Pillow; the real format comes from the bytes.

Every image a model sees went through :func:`decode_image`, in this order:

1. cheap checks on the raw bytes: not empty, under the byte cap, format sniffed from the
   magic bytes and allowed for the model (415 naming what was received otherwise), and for
   JPEG a bounded number of progressive scans (a 150 KB JPEG of 4000x4000 with 2000 repeated
   scans takes ~40 s to decode: libjpeg has no scan limit);
2. the header only: width and height within the limits (min side, max side, max pixels,
   aspect ratio) *before* any pixel is decoded, so a decompression bomb costs nothing;
   animated images (GIF, APNG, WEBP) are refused;
3. the decode itself, with JPEG DCT scaling (``draft``) straight to the needed size;
4. a downscale (never an upscale) to what the model's processor keeps, keeping the aspect
   ratio, with Pillow's ``reducing_gap`` (integer box reduction, then a Lanczos resample;
   RGBA is resized premultiplied, so transparent pixels do not bleed dark fringes);
5. normalisation: 16-bit greyscale scaled (not clipped) to 8 bit, CMYK and palette images
   converted, transparency flattened onto white by alpha compositing, and the EXIF
   orientation applied last (turning the small image is cheap): always 8-bit RGB.

Anything a hostile file makes Pillow raise becomes a 400 that names the format, never the
library's message.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass

from PIL import Image

from mmserve.errors import InvalidRequestError, MMServeError, PayloadTooLargeError, UnsupportedMediaError
from mmserve.media.budget import pixels_exceeded
from mmserve.media.image.sniff import DECODABLE, jpeg_scan_count, label, sniff

log = logging.getLogger("mmserve.media")

_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
# EXIF orientation -> the turn that shows the image upright (as PIL.ImageOps.exif_transpose)
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ImageInputSize:
    """How a model's image processor resizes images, so the media layer can downscale first.

    Exactly what the processor does (each field optional; several may be set):
    ``shortest_edge``: the short side is resized to this (CLIP, LLaVA); ``longest_edge``: the
    long side is fitted into this; ``height`` and ``width``: a fixed resize (SigLIP);
    ``max_pixels``: the image is shrunk to at most this many pixels (Qwen2-VL). The media
    layer never shrinks below what any of them keeps, so the model sees the same pixels.
    ``resample``: the processor's Pillow filter (``Image.Resampling``), which the media layer's
    downscale uses too, so that the pixels are those the processor alone would make (and a
    3000x2000 JPEG for CLIP's bicubic resizes in 2.8 ms, not Lanczos's 3.9); None: Lanczos.
    """

    shortest_edge: int | None = None
    longest_edge: int | None = None
    height: int | None = None
    width: int | None = None
    max_pixels: int | None = None
    resample: int | None = None


@dataclass(frozen=True)
class ImageLimits:
    formats: tuple[str, ...] = ("png", "jpeg", "webp")
    max_side: int = 4000
    min_side: int = 8
    max_pixels: int = 4000 * 4000
    max_bytes: int = 64 * 1024 * 1024
    max_aspect_ratio: float = 200.0
    max_jpeg_scans: int = 100
    #: what the request's other images left of its pixel total (``media.budget``); None: no total
    max_pixels_left: int | None = None
    #: that total, to name it in the refusal
    request_max_pixels: int | None = None


#: ``Image.info`` key of a decoded image: the pixels of the source before any downscale
SOURCE_PIXELS = "mmserve_source_pixels"


def check_bytes(data: bytes, limits: ImageLimits, *, param: str) -> str:
    """The checks that need no decoding; returns the sniffed format."""
    if not data:
        raise InvalidRequestError("The image is empty (0 bytes).", param=param, code="invalid_image")
    if len(data) > limits.max_bytes:
        raise PayloadTooLargeError(
            f"The image is {len(data)} bytes, more than the {limits.max_bytes} byte limit.",
            param=param,
            code="image_too_large",
        )
    supported = ", ".join(limits.formats)
    fmt = sniff(data)
    if fmt is None:
        raise UnsupportedMediaError(
            f"The data is not an image in a format this server recognises. Supported formats: {supported}.",
            param=param,
        )
    if fmt not in limits.formats or fmt not in DECODABLE:
        raise UnsupportedMediaError(
            f"Received {label(fmt)}, which this model does not accept. Supported image formats: {supported}.",
            param=param,
        )
    if fmt == "jpeg":
        scans = jpeg_scan_count(data)
        if scans is None:  # what the counter cannot read is never handed to the decoder unchecked
            raise InvalidRequestError(
                "The JPEG image is corrupt or truncated (its header does not lead to any image data) "
                "and cannot be decoded.",
                param=param,
                code="invalid_image",
            )
        if scans > limits.max_jpeg_scans:
            raise InvalidRequestError(
                f"The JPEG has {scans} progressive scans; at most {limits.max_jpeg_scans} are accepted. "
                "Re-encode the image.",
                param=param,
                code="image_too_complex",
            )
    return fmt


def check_dimensions(w: int, h: int, limits: ImageLimits, *, param: str) -> None:
    if w < limits.min_side or h < limits.min_side:
        raise InvalidRequestError(
            f"The image is {w}x{h}; each side must be at least {limits.min_side} pixels.",
            param=param,
            code="image_too_small",
        )
    if w > limits.max_side or h > limits.max_side or w * h > limits.max_pixels:
        raise PayloadTooLargeError(
            f"The image is {w}x{h}; the limit is {limits.max_side}x{limits.max_side} ({limits.max_pixels} pixels).",
            param=param,
            code="image_too_large",
        )
    if limits.max_pixels_left is not None and w * h > limits.max_pixels_left:
        raise pixels_exceeded(limits.request_max_pixels or limits.max_pixels_left, param)
    if max(w, h) > limits.max_aspect_ratio * min(w, h):
        raise InvalidRequestError(
            f"The image is {w}x{h}; its long side may be at most {limits.max_aspect_ratio:g} times its short side.",
            param=param,
            code="image_aspect_ratio",
        )


def decode_image(
    data: bytes,
    limits: ImageLimits,
    *,
    param: str,
    target_side: int | None = None,
    input_size: ImageInputSize | None = None,
    keep_alpha: bool = False,
) -> Image.Image:
    """Bytes -> 8-bit RGB image within ``limits``; with ``keep_alpha``, RGBA when the file has
    transparency (edit masks and images to edit read their alpha), else RGB.

    It is downscaled (never upscaled, aspect kept) so that its long side is at most
    ``target_side`` and it keeps no more than the model's processor uses (``input_size``).
    """
    fmt = check_bytes(data, limits, param=param)
    try:
        img: Image.Image = Image.open(io.BytesIO(data), formats=[DECODABLE[fmt]])
        w, h = img.size
        check_dimensions(w, h, limits, param=param)
        if getattr(img, "is_animated", False):
            raise UnsupportedMediaError(
                f"Received an animated {label(fmt)}; send a still image (one frame).",
                param=param,
                code="animated_image",
            )
        orientation = img.getexif().get(_ORIENTATION)
        swapped = orientation in _TRANSPOSED
        shown = (h, w) if swapped else (w, h)
        final = plan_size(*shown, target_side=target_side, input_size=input_size)
        raw = (final[1], final[0]) if final is not None and swapped else final
        if raw is not None and fmt == "jpeg":
            img.draft(img.mode, raw)  # DCT scaling: decode at 1/2, 1/4 or 1/8 directly
        img.load()
        img = to_rgb_or_rgba(img)
        if raw is not None and img.size != raw:
            # premultiplied alpha (Pillow resizes RGBA as RGBa), box reduction, then the filter
            resample = input_size.resample if input_size is not None else None
            img = img.resize(raw, resample or Image.Resampling.LANCZOS, reducing_gap=2.0)
        if not keep_alpha:
            img = flatten_alpha(img)
        # orientation last: turning the small image is cheaper than turning the full one
        turn = _EXIF_TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
        if turn is not None:
            img = img.transpose(turn)
        img.info[SOURCE_PIXELS] = w * h
        return img
    except MMServeError:
        raise
    except Image.DecompressionBombError:  # Pillow's own guard, for sizes far beyond ours
        raise PayloadTooLargeError(
            f"The {label(fmt)} image declares a size far beyond the limit of {limits.max_side}x{limits.max_side} "
            f"({limits.max_pixels} pixels); refused before decoding.",
            param=param,
            code="image_too_large",
        ) from None
    except MemoryError:
        raise PayloadTooLargeError(
            f"The {label(fmt)} image needs too much memory to decode.", param=param, code="image_too_large"
        ) from None
    except Exception as e:  # a hostile file can make a decoder raise anything; never echo it
        log.debug("refused %s image for %s: %s: %s", fmt, param, type(e).__name__, e)
        raise InvalidRequestError(
            f"The {label(fmt)} image is corrupt or truncated and cannot be decoded.",
            param=param,
            code="invalid_image",
        ) from None


def plan_size(
    w: int, h: int, *, target_side: int | None = None, input_size: ImageInputSize | None = None
) -> tuple[int, int] | None:
    """The size to downscale a ``w`` x ``h`` image to, or None to keep it."""
    scale = 1.0
    if input_size is not None:
        scale = min(scale, keep_scale(w, h, input_size))
    if target_side:
        scale = min(scale, target_side / max(w, h))
    if scale >= 1.0:
        return None
    # round up: never fewer pixels than the processor keeps
    return max(1, math.ceil(w * scale - 1e-6)), max(1, math.ceil(h * scale - 1e-6))


def keep_scale(w: int, h: int, size: ImageInputSize) -> float:
    """The smallest scale at which the processor's output would be unchanged."""
    needs = []
    if size.shortest_edge:
        needs.append(size.shortest_edge / min(w, h))
    if size.longest_edge:
        needs.append(size.longest_edge / max(w, h))
    if size.height and size.width:
        needs.append(max(size.width / w, size.height / h))
    if size.max_pixels:
        needs.append(math.sqrt(size.max_pixels / (w * h)))
    return max(needs) if needs else 1.0


def to_rgb_or_rgba(img: Image.Image) -> Image.Image:
    """Any decoded mode -> 8-bit RGB, or RGBA when it has transparency."""
    if img.mode in _SIXTEEN_BIT:
        # 16-bit greyscale: scale 0..65535 to 0..255 (Pillow's convert("L") would clip)
        img = img.convert("I").point(lambda v: v * (1 / 257) + 0.5).convert("L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        return img if img.mode == "RGBA" else img.convert("RGBA")
    return img if img.mode == "RGB" else img.convert("RGB")


def flatten_alpha(img: Image.Image) -> Image.Image:
    """RGBA -> RGB composited onto white (semi-transparent pixels blend, as a viewer shows them)."""
    if img.mode != "RGBA":
        return img
    background = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, img).convert("RGB")
