"""The Responses API on an upstream chat card through the openai SDK against `mmserve serve`: the
request becomes the provider's chat completion, its answer and usage come back as a response, a
stored response continues on the provider, and a failing provider is an envelope naming it."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.helpers.fake_provider import FakeProvider
from tests.helpers.process import ServerProcess
from tests.helpers.upstream import usage_of


@pytest.fixture(scope="module")
def client(upstream_server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=upstream_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_a_response_is_the_providers_answer_with_its_usage_and_cost(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess
) -> None:
    before = usage_of(upstream_server.url, "remote-chat", 0)
    r = client.responses.create(model="remote-chat", instructions="be brief", input="echo these four words")
    sent = upstream.requests[-1]
    assert sent["model"] == "their-chat"
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "be brief"),
        ("user", "echo these four words"),
    ]
    assert r.status == "completed" and r.output_text == "echo these four words"  # the fake echoes
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (6, 4)  # the fake's counts
    after = usage_of(upstream_server.url, "remote-chat", before["requests"] + 1)
    assert after["input_tokens"] - before["input_tokens"] == 6
    assert after["output_tokens"] - before["output_tokens"] == 4
    assert after["cost"] - before["cost"] == pytest.approx(6 * 1.0 / 1e6 + 4 * 2.0 / 1e6)


def test_a_stored_response_continues_on_the_provider(client: OpenAI, upstream: FakeProvider) -> None:
    first = client.responses.create(model="remote-chat", input="remember the word cobalt")
    second = client.responses.create(model="remote-chat", input="say it again", previous_response_id=first.id)
    roles = [(m["role"], _text(m["content"])) for m in upstream.requests[-1]["messages"]]
    assert roles == [
        ("user", "remember the word cobalt"),
        ("assistant", "remember the word cobalt"),
        ("user", "say it again"),
    ]
    assert second.output_text == "say it again"


def test_a_streamed_response_arrives_in_the_providers_pieces(client: OpenAI, upstream: FakeProvider) -> None:
    with client.responses.stream(model="remote-chat", input="one two three") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "one two three" and len(deltas) >= 2
    assert final.usage is not None and final.usage.output_tokens == 3


def test_a_failing_provider_is_an_envelope_naming_it(client: OpenAI, upstream: FakeProvider) -> None:
    upstream.fail_next(500, path="/v1/chat", times=2)
    with pytest.raises(openai.APIStatusError) as e:
        client.responses.create(model="remote-chat", input="hello")
    err: Any = e.value.body
    assert e.value.status_code == 502 and err["code"] == "upstream_error" and "fakeai" in err["message"]
    assert upstream.key not in err["message"]


def _text(content: str | list[dict[str, Any]]) -> str:
    return content if isinstance(content, str) else "".join(p["text"] for p in content if p["type"] == "text")
