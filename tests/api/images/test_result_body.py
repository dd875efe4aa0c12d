"""An image answer's JSON body: base64 images spliced into the rest of the body, valid JSON either way."""

from __future__ import annotations

import base64
import json

from mmserve.api.images.service import ImagesResult

BODY = {"created": 1700000000, "background": "opaque", "output_format": "png", "size": "64x64", "usage": {"images": 2}}


def test_b64_images_come_back_as_data_in_order_with_the_rest_of_the_body() -> None:
    blobs = [base64.b64encode(bytes(range(256)) * 40), base64.b64encode(b"\x89PNG second")]
    result = ImagesResult(model="m", images=2, usage={}, body=dict(BODY), b64=blobs)
    parsed = json.loads(result.json_bytes())
    assert parsed == {**BODY, "data": [{"b64_json": b.decode()} for b in blobs]}


def test_one_image_and_url_answers() -> None:
    one = ImagesResult(model="m", images=1, usage={}, body=dict(BODY), b64=[b"QUJD"])
    assert json.loads(one.json_bytes())["data"] == [{"b64_json": "QUJD"}]
    urls = {**BODY, "data": [{"url": "http://x/v1/artifacts/a?sig=\\"}]}
    assert json.loads(ImagesResult(model="m", images=1, usage={}, body=urls).json_bytes()) == urls
