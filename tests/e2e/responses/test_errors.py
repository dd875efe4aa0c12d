"""Bad Responses requests: a 4xx envelope naming the Responses field (not chat's), never a 500."""

from __future__ import annotations

import base64
import json

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers.images import data_uri
from tests.helpers.openapi import accepts, published

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
PDF = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.7 ...").decode()


def _user(*parts: dict) -> list[dict]:
    return [{"role": "user", "content": list(parts)}]


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"input": [{"type": "computer_call_output"}]}, 400, "input[0]", "input item"),
        ({"input": _user({"type": "input_audio", "data": "x"})}, 400, "input[0].content[0]", None),
        ({"input": _user({"type": "input_image", "file_id": "file-1"})}, 400, "input[0].content[0].file_id", "Files"),
        ({"input": _user({"type": "input_file", "file_data": PDF})}, 415, "input[0].content[0]", "PDF"),
        ({"input": _user({"type": "input_file", "file_id": "f"})}, 400, "input[0].content[0].file_id", "Files"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, 400, "input[0].type", "item_reference"),
        ({"input": "x", "tools": [{"type": "web_search"}]}, 400, "tools[0].type", "function tools"),
        ({"input": "x", "tools": [{**WEATHER, "parameters": {"type": "nope"}}]}, 400, "tools[0].parameters", None),
        (
            {"input": "x", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "x"}},
            400,
            "tool_choice",
            None,
        ),
        ({"input": "x", "tool_choice": {"type": "mcp"}}, 400, "tool_choice", None),
        (
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": 5}}}},
            400,
            "text.format.schema",
            None,
        ),
        ({"input": "x", "text": {"format": {"type": "json_schema", "name": "r"}}}, 400, "text.format.schema", None),
        ({"input": "x", "text": {"format": {"type": "yaml"}}}, 400, "text.format.type", None),
        ({"input": "x", "reasoning": {"effort": "extreme"}}, 400, "reasoning.effort", None),
        ({"input": "x", "max_output_tokens": 5000}, 400, "max_output_tokens", "at most 256"),
        ({"input": "x", "background": True}, 400, "background", None),
        ({"input": "x", "truncation": "auto"}, 400, "truncation", None),
        ({"input": "x", "top_logprobs": 21}, 400, "top_logprobs", None),
        ({"input": "x", "conversation": "conv_1"}, 400, "conversation", None),
        ({"input": "x", "metadata": {str(i): "v" for i in range(17)}}, 400, "metadata", "16"),
        ({"instructions": "Be nice."}, 400, "input", "needs 'input'"),
        ({"input": "x", "previous_response_id": "resp_nope"}, 404, "previous_response_id", None),
        (
            {"input": _user({"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": data_uri()})},
            400,
            "input[0].content[1].image_url",
            "does not accept images",
        ),
        (
            {"input": _user({"type": "input_image", "image_url": "data:image/png;base64,!!"})},
            400,
            "input[0].content[0].image_url",
            None,
        ),
        ({"model": "demo-embed", "input": "x"}, 404, "model", None),
        ({"input": "word " * 3000}, 400, "input", "context"),
    ],
)
def test_bad_input_names_the_field(url: str, body: dict, status: int, param: str, words: str | None) -> None:
    r = httpx.post(f"{url}/responses", json={"model": "tool-lm", **body}, timeout=60)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["param"] == param, err
    if words:
        assert words in err["message"], err["message"]


def test_an_engine_failure_mid_stream_fails_the_response(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)  # the chat server: broken-gpt2
    body = {"model": "broken-gpt2", "input": "Hello", "max_output_tokens": 60, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{base_url}/responses", json=body, timeout=60) as resp:
        assert resp.status_code == 200
        events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    failed, error = events[-2:]
    assert failed["type"] == "response.failed" and failed["response"]["error"]["code"] == "engine_error"
    assert error["type"] == "error" and "index" not in error["message"].lower()
    with (
        pytest.raises(openai.APIError),
        client.responses.stream(model="broken-gpt2", input="Hello", max_output_tokens=60, temperature=0) as stream,
    ):
        list(stream)


def test_the_published_schema_lists_the_reasoning_efforts_the_server_takes(url: str) -> None:
    """A client (or a fuzzer) reading /openapi.json must not find valid an effort the server refuses."""
    doc = published(url)
    effort = doc["components"]["schemas"]["ReasoningConfig"]["properties"]["effort"]
    assert effort.get("enum") == ["none", "minimal", "low", "medium", "high", "xhigh", None], effort


@pytest.mark.parametrize("schema", ["absent", None])
def test_a_json_schema_format_without_its_schema_is_invalid_in_the_schema_too(url: str, schema: object) -> None:
    """The server refuses a ``json_schema`` text format without a schema object; so does the published schema."""
    valid = accepts(published(url), "ResponseRequest")
    fmt: dict = {"type": "json_schema", "name": "answer"}
    if schema != "absent":
        fmt["schema"] = schema
    body = {"model": "tool-lm", "input": "hi", "text": {"format": fmt}}
    assert not valid(body)
    assert valid({**body, "text": {"format": {**fmt, "schema": {"type": "object"}}}})
    assert valid({**body, "text": {"format": {"type": "text"}}}) and valid({**body, "text": {"format": {}}})
    r = httpx.post(f"{url}/responses", json=body, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "text.format.schema", r.text
