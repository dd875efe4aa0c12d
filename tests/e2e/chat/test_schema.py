"""The chat request's published schema (/openapi.json) says what the server refuses, so that a client
generated from it (or a fuzzer reading it) never finds valid what gets a 400."""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.helpers.openapi import accepts, published
from tests.helpers.server import LiveServer


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


def test_ignore_eos_with_an_enforced_format_is_invalid_in_the_schema(
    document: dict[str, Any], formats_server: LiveServer
) -> None:
    valid = accepts(document, "ChatCompletionRequest")
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body: dict[str, Any] = {"model": "tool-lm-random", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    enforced = [
        {"response_format": {"type": "json_object"}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
        {"tools": [tool], "tool_choice": "required"},
        {"tools": [tool], "tool_choice": {"type": "function", "function": {"name": "f"}}},
    ]
    free = [{}, {"response_format": {"type": "text"}}, {"tools": [tool], "tool_choice": "auto"}, {"tools": [tool]}]
    for extra in free:
        assert valid({**body, **extra, "ignore_eos": True}), extra
    for extra in enforced:
        assert valid({**body, **extra}) and valid({**body, **extra, "ignore_eos": False}), extra
        assert not valid({**body, **extra, "ignore_eos": True}), extra
    client = OpenAI(base_url=f"{formats_server.url}/v1", api_key="unused", max_retries=0)
    for extra in enforced:  # what the schema refuses, the server refuses; what it takes, the server answers
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(**body, **extra, extra_body={"ignore_eos": True})
    for extra in free:
        client.chat.completions.create(**body, **extra, extra_body={"ignore_eos": True})
