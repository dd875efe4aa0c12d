"""Images by http(s) URL: fetched safely (loopback is allowlisted in the test server's settings)."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from mmserve.catalog.builders.vlm import IMAGE_TOKENS
from tests.helpers.httpserver import TargetServer
from tests.helpers.images import image_bytes


def test_image_by_url_from_allowlisted_loopback(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    with TargetServer() as target:
        target.routes["/cat.jpg"] = (200, {"Content-Type": "image/jpeg"}, image_bytes((640, 480), fmt="JPEG"))
        target.routes["/go"] = (302, {"Location": "/cat.jpg"}, b"")
        r = client.chat.completions.create(
            model="demo-vlm",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": target.url("/go")}},
                        {"type": "text", "text": "What's in this image?"},
                    ],
                }
            ],
            max_tokens=3,
        )
        assert r.usage and r.usage.prompt_tokens > IMAGE_TOKENS
        assert [p for p, _ in target.requests] == ["/go", "/cat.jpg"]


def test_url_answering_404_is_422(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    with TargetServer() as target, pytest.raises(openai.UnprocessableEntityError) as e:
        client.chat.completions.create(
            model="demo-vlm",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": target.url("/x")}}]}],
        )
    assert "404" in str(e.value)
