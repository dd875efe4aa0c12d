"""An upstream card: a third-party OpenAI-compatible provider served through mmserve's catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import parse_catalog
from mmserve.settings import Settings
from tests.helpers.fake_provider import FakeProvider
from tests.helpers.images import data_uri
from tests.helpers.server import LiveServer


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as p:
        yield p


@pytest.fixture(scope="module")
def client(provider: FakeProvider, data_dir: Path, monkeypatch_module: pytest.MonkeyPatch) -> Iterator[OpenAI]:
    monkeypatch_module.setenv("FAKE_PROVIDER_KEY", provider.key)
    text = f"""
models:
  - id: remote-vlm
    task: chat
    engine: upstream-chat
    options: {{base_url: "{provider.base_url}", model: "their-vlm-large", api_key_env: FAKE_PROVIDER_KEY}}
    capabilities: {{vision: true}}
  - id: remote-tools
    task: chat
    engine: upstream-chat
    options: {{base_url: "{provider.base_url}", api_key_env: FAKE_PROVIDER_KEY}}
    capabilities: {{tool_call_format: hermes}}
  - id: remote-nokey
    task: chat
    engine: upstream-chat
    options: {{base_url: "{provider.base_url}", api_key_env: MMSERVE_TEST_UNSET_KEY}}
"""
    catalog = parse_catalog(text, file="upstream.yaml", base_dir=data_dir)
    server = LiveServer(create_app(Settings(data_dir=data_dir), catalog)).start()
    yield OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_upstream_chat_round_trip(client: OpenAI, provider: FakeProvider) -> None:
    r = client.chat.completions.create(
        model="remote-vlm",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "alpha beta gamma"},
                    {"type": "image_url", "image_url": {"url": data_uri()}},
                ],
            }
        ],
        max_tokens=2,
        seed=5,
    )
    assert r.model == "remote-vlm"
    assert r.choices[0].message.content == "alpha beta"
    assert r.usage and r.usage.completion_tokens == 2 and r.usage.prompt_tokens == 3
    sent = provider.requests[-1]
    assert sent["model"] == "their-vlm-large" and sent["max_tokens"] == 2 and sent["seed"] == 5
    assert not sent.get("stream") and "stream_options" not in sent  # a whole answer, as the client asked
    image = sent["messages"][0]["content"][1]["image_url"]["url"]
    assert image.startswith("data:image/png;base64,")  # the bounded image, re-encoded


def test_upstream_streaming_usage(client: OpenAI, provider: FakeProvider) -> None:
    chunks = list(
        client.chat.completions.create(
            model="remote-vlm",
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens == 3
    sent = provider.requests[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    "answer",
    [
        {"object": "chat.completion", "choices": []},
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": 5}}]},
        {"choices": [{"index": 0, "message": "hello"}]},
        {"choices": [{"index": 0, "message": {"content": "hi"}}], "usage": {"completion_tokens": "many"}},
    ],
)
def test_a_whole_answer_that_is_no_chat_completion_is_a_502_naming_the_provider(
    client: OpenAI, provider: FakeProvider, answer: dict[str, object]
) -> None:
    provider.chat_answer = answer
    try:
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="remote-vlm", messages=[{"role": "user", "content": "x"}])
    finally:
        provider.chat_answer = None
    err: Any = e.value.body
    assert e.value.status_code == 502 and err["code"] == "upstream_bad_response"
    assert "127.0.0.1" in err["message"] and "'remote-vlm'" in err["message"]


@pytest.mark.parametrize("field", ["logprobs", "ignore_eos"])
def test_what_the_upstream_engine_cannot_give_is_a_400(client: OpenAI, provider: FakeProvider, field: str) -> None:
    sent = len(provider.requests)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="remote-vlm", messages=[{"role": "user", "content": "x"}], extra_body={field: True}
        )
    assert e.value.body["param"] == field  # type: ignore[index]
    assert len(provider.requests) == sent  # refused before anything was sent


def test_missing_key_env_is_503_naming_the_variable(client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="remote-nokey", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 503 and "MMSERVE_TEST_UNSET_KEY" in str(e.value)


TOOLS = [
    {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    },
]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_tool_calls_reach_the_client(client: OpenAI, provider: FakeProvider, stream: bool) -> None:
    kwargs = {
        "model": "remote-tools",
        "messages": [{"role": "user", "content": "find the tower"}],
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    }
    if stream:
        chunks = list(client.chat.completions.create(**kwargs, stream=True))  # type: ignore[call-overload]
        deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
        name = "".join(d.function.name or "" for d in deltas if d.function)
        arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        r = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
        calls = r.choices[0].message.tool_calls
        assert calls and len(calls) == 1
        name, arguments, finish = calls[0].function.name, calls[0].function.arguments, [r.choices[0].finish_reason]
    assert name == "lookup" and json.loads(arguments) == {"text": "find the tower"}
    assert finish == ["tool_calls"]
    sent = provider.requests[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}  # OpenAI's shape
    assert [t["function"]["name"] for t in sent["tools"]] == ["search", "lookup"]
    assert bool(sent.get("stream")) is stream  # a whole answer when the client waits for one


def test_legacy_completions_are_refused_for_an_upstream_card(client: OpenAI, provider: FakeProvider) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="remote-vlm", prompt="Hello")
    err = e.value.body
    assert err["param"] == "prompt" and "chat messages only" in err["message"]  # type: ignore[index]
