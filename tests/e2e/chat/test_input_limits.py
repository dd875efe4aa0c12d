"""Chat text is bounded before anything tokenises it (issue 18, item 1): chars and UTF-8 bytes,
per message and per request, from the card's limits, its context and the server's settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from openai import OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.settings import LimitSettings, Settings
from tests.helpers.server import LiveServer

CATALOG = {
    "models": [
        {  # no limit of its own: its context (256 tokens) bounds the text at 256 x 16 UTF-8 bytes
            "id": "short-context",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "capabilities": {"context_length": 256},
            "limits": {"max_output_tokens": 8},
        },
        {
            "id": "small-input",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "limits": {"max_input_chars": 300, "max_output_tokens": 8},
        },
        {  # neither: the server's limits apply
            "id": "no-context",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "limits": {"max_output_tokens": 8},
        },
    ]
}


@pytest.fixture(scope="module")
def client(data_dir: Path) -> Iterator[OpenAI]:
    path = data_dir / "input-limits.yaml"
    path.write_text(yaml.safe_dump(CATALOG))
    limits = LimitSettings(max_chat_chars=20_000, max_chat_bytes=30_000)
    server = LiveServer(create_app(Settings(data_dir=data_dir, config=path, limits=limits), load_catalog(path)))
    server.start()
    yield OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    server.stop()


def _refused(client: OpenAI, model: str, messages: list[dict], **kw: object) -> dict:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=messages, max_tokens=2, **kw)  # type: ignore[arg-type]
    body = e.value.body
    assert isinstance(body, dict) and body["code"] == "context_length_exceeded"
    return body


def test_the_cards_max_input_chars_bounds_a_chat_request(client: OpenAI) -> None:
    body = _refused(client, "small-input", [{"role": "user", "content": "x" * 301}])
    assert body["param"] == "messages[0].content"
    assert "301" in body["message"] and "300" in body["message"] and "limits.max_input_chars" in body["message"]
    # the sum of the messages counts too
    two = [{"role": "system", "content": "s" * 200}, {"role": "user", "content": [{"type": "text", "text": "u" * 200}]}]
    assert _refused(client, "small-input", two)["param"] == "messages"
    ok = client.chat.completions.create(model="small-input", messages=[{"role": "user", "content": "x" * 290}])
    assert ok.usage and ok.usage.prompt_tokens > 0


def test_the_context_bounds_a_card_without_limits(client: OpenAI) -> None:
    body = _refused(client, "short-context", [{"role": "user", "content": "word " * 1000}])  # 5000 bytes > 4096
    assert "4096" in body["message"] and "context" in body["message"]
    # within the bound, the tokenizer decides: the prompt is too long for 256 tokens
    body = _refused(client, "short-context", [{"role": "user", "content": "word " * 700}])
    assert "tokens" in body["message"]


def test_the_servers_limits_bound_everything(client: OpenAI) -> None:
    huge = "A long prompt. " * 700_000  # ~10 MB: refused without being tokenised
    body = _refused(client, "no-context", [{"role": "user", "content": huge}])
    assert "MMSERVE_LIMITS__MAX_CHAT_CHARS" in body["message"]
    # bytes count apart from characters: 4-byte characters reach the byte bound first
    body = _refused(client, "no-context", [{"role": "user", "content": "\U0001f600" * 10_000}])
    assert "bytes" in body["message"] and "MMSERVE_LIMITS__MAX_CHAT_BYTES" in body["message"]
    # tool definitions are text the template renders too
    tool = {"type": "function", "function": {"name": "f", "description": "d" * 25_000, "parameters": {}}}
    _refused(client, "no-context", [{"role": "user", "content": "hi"}], tools=[tool], tool_choice="none")
