"""Images as an openai SDK user sends them: large photos, detail levels, and the errors they see."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from openai import OpenAI
from PIL import Image

from mmserve.catalog.builders.vlm import IMAGE_TOKENS
from tests.helpers import hostile as h
from tests.helpers.images import data_uri


@pytest.fixture
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def _uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _ask(client: OpenAI, url: str, detail: str = "auto") -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model="demo-vlm",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe it."},
                    {"type": "image_url", "image_url": {"url": url, "detail": detail}},
                ],
            }
        ],
        max_tokens=2,
        temperature=0,
    )


@pytest.mark.parametrize("detail", ["low", "high", "auto"])
def test_a_large_photo_at_every_detail(client: OpenAI, detail: str) -> None:
    buf = io.BytesIO()
    h.noisy((3000, 2000)).save(buf, "JPEG", quality=85)
    r = _ask(client, _uri(buf.getvalue(), "image/jpeg"), detail)
    assert r.usage and r.usage.prompt_tokens > IMAGE_TOKENS
    small = _ask(client, data_uri(fmt="JPEG"), detail)
    assert small.usage and small.usage.prompt_tokens == r.usage.prompt_tokens  # fixed-resolution model


def test_unusual_images_are_served(client: OpenAI) -> None:
    for url in (
        _uri(h.exif_rotated_jpeg((640, 320)), "image/jpeg"),
        _uri(h.cmyk_jpeg(), "image/jpeg"),
        _uri(h.png16(), "image/png"),
        _uri(h.encode(Image.new("RGBA", (300, 200), (255, 0, 0, 60)), "WEBP"), "image/webp"),
    ):
        assert _ask(client, url).choices[0].finish_reason in ("stop", "length")


def test_errors_as_the_sdk_raises_them(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as too_large:
        _ask(client, _uri(h.png_bomb_header(), "image/png"))
    assert too_large.value.status_code == 413
    with pytest.raises(openai.APIStatusError) as unsupported:
        _ask(client, _uri(h.animated("WEBP"), "image/webp"))
    assert unsupported.value.status_code == 415
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        _ask(client, "http://169.254.169.254/latest/meta-data/iam/")
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["param"] == "messages[0].content[1].image_url" and body["code"] == "url_refused"
    with pytest.raises(openai.BadRequestError) as small:
        _ask(client, data_uri(size=(4, 4)))
    assert "at least 8 pixels" in str(small.value)
