"""Inpainting masks from user uploads: OpenAI's alpha convention or a plain black/white mask.

OpenAI's edits API marks the area to edit with transparency: fully transparent pixels
(alpha 0) are repainted, opaque ones kept; without a mask, the image's own transparent
pixels are the area to edit. A mask without an alpha channel is read the diffusers way:
white is repainted, black kept. The result is always a mode "L" image, white
= repaint, which is what inpainting pipelines take.

Call :func:`mask_from_upload` only on bytes that already passed the media layer's
``decode`` (format allowed, size bounded, not a decompression bomb): the decoder flattens
alpha, so the alpha channel is read here from the same, already validated bytes.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps


def mask_from_upload(data: bytes, size: tuple[int, int]) -> Image.Image:
    """The repaint mask of ``data`` at ``size`` (the decoded image's size). Blocking."""
    mask = _mask(data, size, grayscale=True)
    assert mask is not None  # grayscale=True always gives a mask
    return mask


def transparency_mask(data: bytes, size: tuple[int, int]) -> Image.Image | None:
    """The repaint mask of an edit image's own transparent pixels, or None if it has none.

    OpenAI's edits use the image's transparency as the mask when no mask is sent.
    """
    mask = _mask(data, size, grayscale=False)
    if mask is None:
        return None
    _, hi = mask.getextrema()  # an "L" image: (min, max)
    return mask if hi == 255 else None  # 255: some pixel is fully transparent


def _mask(data: bytes, size: tuple[int, int], *, grayscale: bool) -> Image.Image | None:
    with Image.open(io.BytesIO(data)) as src:
        src.seek(0)
        img = ImageOps.exif_transpose(src) or src
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            alpha = img.convert("RGBA").getchannel("A")
            mask = ImageOps.invert(alpha)  # transparent (0) -> 255: repaint
        elif grayscale:
            mask = img.convert("L")
        else:
            return None
        if mask.size != size:
            mask = mask.resize(size, Image.Resampling.NEAREST)
        mask.load()
        return mask
