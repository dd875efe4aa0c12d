"""Decode what the Images API returns."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def decode_b64(b64: str | None) -> Image.Image:
    assert b64, "no b64_json in the response"
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def png_upload(size: tuple[int, int] = (256, 256), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A PNG with a coloured pattern (so edits have structure to keep)."""
    img = Image.new("RGB", size, color)
    for x in range(0, size[0], 16):
        img.paste((20, 120, 220), (x, 0, x + 4, size[1]))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def alpha_mask(size: tuple[int, int], hole: tuple[int, int, int, int]) -> bytes:
    """An OpenAI-style mask: opaque everywhere except a fully transparent ``hole`` (the area to edit)."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), hole)
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    return buf.getvalue()


def same_up_to_batch_numerics(a: Image.Image, b: Image.Image) -> bool:
    """Equal up to batch numerics: an image made in a pipeline call over n images may differ from
    the same seed's image made alone by a level or two in a few pixels (the convolutions of a batch of
    2 may sum in another order than those of 1: oneDNN picks kernels by shape and CPU). Another
    seed moves most pixels by tens of levels."""
    x, y = np.asarray(a).astype(int), np.asarray(b).astype(int)
    return x.shape == y.shape and int(np.abs(x - y).max()) <= 2
