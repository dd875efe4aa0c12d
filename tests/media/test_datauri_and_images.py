from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from mmserve.api.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError
from mmserve.media.datauri import parse_data_uri
from mmserve.media.images import ImageLimits, decode_image, sniff_format
from tests.helpers.images import image_bytes


def test_data_uri_parses_and_caps_before_decoding() -> None:
    payload = base64.b64encode(b"x" * 30).decode()
    uri = parse_data_uri(f"data:image/png;base64,{payload}", param="p", max_bytes=100)
    assert uri.mime == "image/png" and uri.data == b"x" * 30
    with pytest.raises(PayloadTooLargeError):
        parse_data_uri(f"data:image/png;base64,{payload}", param="p", max_bytes=10)


@pytest.mark.parametrize(
    "bad", ["data:image/png;base64", "data:;base64,", "image/png;base64,AAAA", "data:image/png,AAAA"]
)
def test_data_uri_shapes_refused(bad: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_data_uri(bad, param="p", max_bytes=100)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_sniff_reads_the_bytes(fmt: str) -> None:
    assert sniff_format(image_bytes(fmt=fmt)) == fmt.lower()


def test_decode_bounds_and_formats() -> None:
    limits = ImageLimits(max_side=100, max_pixels=100 * 100)
    img = decode_image(image_bytes((80, 60)), limits, param="p")
    assert img.size == (80, 60) and img.mode == "RGB"
    with pytest.raises(PayloadTooLargeError):
        decode_image(image_bytes((120, 10)), limits, param="p")
    with pytest.raises(UnsupportedMediaError, match="GIF"):
        decode_image(image_bytes(fmt="GIF"), limits, param="p")


def test_decode_downscales_keeping_aspect_and_flattens_alpha() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (400, 200), (0, 0, 0, 0)).save(buf, "PNG")
    img = decode_image(buf.getvalue(), ImageLimits(), param="p", target_side=100)
    assert img.size == (100, 50)
    assert img.getpixel((10, 10)) == (255, 255, 255)  # transparent -> white
