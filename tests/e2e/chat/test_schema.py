"""The chat request's published schema (/openapi.json) says what the server refuses, so that a client
generated from it (or a fuzzer reading it) never finds valid what gets a 400."""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.helpers.openapi import accepts, published


@pytest.fixture(scope="module")
def document(base_url: str) -> dict[str, Any]:
    return published(base_url)


@pytest.fixture(scope="module")
def schemas(document: dict[str, Any]) -> dict[str, Any]:
    return dict(document["components"]["schemas"])


def test_a_video_url_is_an_http_url_or_a_data_uri(schemas: dict[str, Any], base_url: str) -> None:
    pattern = schemas["VideoURL"]["properties"]["url"]["pattern"]
    assert re.search(pattern, "https://example.com/a.mp4") and re.search(pattern, "data:video/mp4;base64,AAAA")
    assert not re.search(pattern, "") and not re.search(pattern, "ftp://example.com/a.mp4")
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    video: Any = {"type": "video_url", "video_url": {"url": ""}}
    with pytest.raises(openai.BadRequestError):  # what the pattern refuses, the server refuses
        client.chat.completions.create(model="demo-vlm", messages=[{"role": "user", "content": [video]}])


def test_top_logprobs_without_logprobs_true_is_invalid_in_the_schema(document: dict[str, Any], base_url: str) -> None:
    valid = accepts(document, "ChatCompletionRequest")
    body = {"model": "demo-vlm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "top_logprobs": 2}
    assert valid({**body, "logprobs": True}) and valid({k: v for k, v in body.items() if k != "top_logprobs"})
    assert not valid(body) and not valid({**body, "logprobs": False})
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError):  # what the schema refuses, the server refuses
        client.chat.completions.create(**body)
