"""Images as users send them."""

from __future__ import annotations

import base64
import io

from PIL import Image


def image_bytes(
    size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG"
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def data_uri(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG") -> str:
    mime = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}[fmt]
    return f"data:image/{mime};base64," + base64.b64encode(image_bytes(size, color, fmt)).decode()
