"""An ``upstream-chat`` card whose provider is another mmserve: a real OpenAI-compatible server with
a real engine behind it, not a fake. Through the card, a client gets what the provider answers
directly, whether it waits for the whole answer (asked of the provider whole) or streams it: the
same text, tool calls and finish reason, and the provider's token counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import parse_catalog
from mmserve.settings import Settings
from tests.helpers.server import LiveServer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 8}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def provider(formats_server: LiveServer) -> OpenAI:
    return OpenAI(base_url=formats_server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def gateway(formats_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAI]:
    data: Path = tmp_path_factory.mktemp("hosted")
    text = f"""
models:
  - id: hosted-tools
    task: chat
    engine: upstream-chat
    options: {{base_url: "{formats_server.url}/v1", model: demo-tools}}
    capabilities: {{tool_call_format: hermes}}
"""
    server = LiveServer(create_app(Settings(data_dir=data), parse_catalog(text, file="hosted.yaml", base_dir=data)))
    server.start()
    yield OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    server.stop()


def _answer(client: OpenAI, model: str, stream: bool, **kwargs: Any) -> dict[str, Any]:
    """Text, tool calls (name, arguments), finish reason and token counts, however the answer came."""
    if not stream:
        r = client.chat.completions.create(model=model, **kwargs)
        calls = [(c.function.name, c.function.arguments) for c in r.choices[0].message.tool_calls or []]
        usage = (r.usage.prompt_tokens, r.usage.completion_tokens) if r.usage else None
        return {
            "text": r.choices[0].message.content,
            "calls": calls,
            "finish": r.choices[0].finish_reason,
            "usage": usage,
        }
    chunks = list(
        client.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True}, **kwargs)
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    parts = [tc for d in deltas for tc in d.tool_calls or []]
    names = [tc.function.name for tc in parts if tc.function and tc.function.name]
    arguments = "".join(tc.function.arguments or "" for tc in parts if tc.function)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = chunks[-1].usage
    return {
        "text": "".join(d.content or "" for d in deltas) or None,
        "calls": [(names[0], arguments)] if names else [],
        "finish": finish[-1],
        "usage": (usage.prompt_tokens, usage.completion_tokens) if usage else None,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_a_plain_answer_is_the_providers(gateway: OpenAI, provider: OpenAI, stream: bool) -> None:
    ask = {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 8, "temperature": 0, "seed": 3}
    direct = _answer(provider, "demo-tools", stream, **ask)
    through = _answer(gateway, "hosted-tools", stream, **ask)
    assert direct["text"] and direct["usage"] and direct["usage"][1] == 8
    assert through == direct


@pytest.mark.parametrize("stream", [False, True])
def test_a_required_tool_call_is_the_providers(gateway: OpenAI, provider: OpenAI, stream: bool) -> None:
    ask = {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": TOOLS,
        "tool_choice": "required",
        "max_tokens": 200,
        "temperature": 0,
        "seed": 1,
    }
    direct = _answer(provider, "demo-tools", stream, **ask)
    through = _answer(gateway, "hosted-tools", stream, **ask)
    assert direct["finish"] == "tool_calls" and direct["calls"] and direct["calls"][0][0] == "get_weather"
    assert through == direct
