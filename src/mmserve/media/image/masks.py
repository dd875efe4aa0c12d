"""Inpainting masks from user uploads: OpenAI's alpha convention or a plain black/white mask.

OpenAI's edits API marks the area to edit with transparency: fully transparent pixels
(alpha 0) are repainted, opaque ones kept; without a mask, the image's own transparent
pixels are the area to edit. A mask without an alpha channel is read the diffusers way:
white is repainted, black kept. The result is always a mode "L" image, white
= repaint, which is what inpainting pipelines take.

The images come decoded by the media layer's isolated decode worker with ``keep_alpha``
(transparency kept when the file has it): the server process never parses user bytes itself.
"""

from __future__ import annotations

from PIL import Image, ImageOps


def mask_from_image(img: Image.Image) -> Image.Image:
    """The repaint mask of a decoded mask upload: its alpha when it has one, else its grey levels."""
    if img.mode == "RGBA":
        return ImageOps.invert(img.getchannel("A"))  # transparent (0) -> 255: repaint
    return img.convert("L")


def transparency_mask(img: Image.Image) -> Image.Image | None:
    """The repaint mask of an edit image's own transparent pixels, or None if it has none.

    OpenAI's edits use the image's transparency as the mask when no mask is sent.
    """
    if img.mode != "RGBA":
        return None
    mask = ImageOps.invert(img.getchannel("A"))
    _, hi = mask.getextrema()  # an "L" image: (min, max)
    return mask if hi == 255 else None  # 255: some pixel is fully transparent
