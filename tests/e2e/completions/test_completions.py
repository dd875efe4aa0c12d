"""POST /v1/completions (legacy) through the openai SDK, on the chat server's tiny models."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers.server import LiveServer


@pytest.fixture(scope="module")
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def _greedy(client: OpenAI, prompt: str | list[int], **kw: object) -> openai.types.Completion:
    return client.completions.create(model="tiny-text", prompt=prompt, temperature=0, **kw)  # type: ignore[arg-type]


def test_a_prompt_is_continued_as_given(client: OpenAI, chat_server: LiveServer) -> None:
    r = _greedy(client, "The quick brown fox", max_tokens=8)
    assert r.object == "text_completion" and r.model == "tiny-text" and r.id.startswith("cmpl-")
    choice = r.choices[0]
    assert choice.index == 0 and choice.finish_reason in ("stop", "length") and choice.logprobs is None
    tokenizer = chat_server.app.state.mm.runtime.deployments["tiny-text"].engine.tokenizer
    assert r.usage.prompt_tokens == len(tokenizer("The quick brown fox")["input_ids"])
    assert 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert choice.text and choice.text == _greedy(client, "The quick brown fox", max_tokens=8).choices[0].text


def test_no_chat_template_is_applied(client: OpenAI, base_url: str) -> None:
    # the chat template of the demo models renders exactly this: a raw prompt written by hand
    # continues the same way as the chat request (greedy)
    body = {"model": "tiny-text", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6, "temperature": 0}
    chat = httpx.post(f"{base_url}/chat/completions", json=body, timeout=60).json()
    raw = _greedy(client, "<|user|>Hello<|end|><|assistant|>", max_tokens=6)
    assert raw.choices[0].text == chat["choices"][0]["message"]["content"]
    assert raw.usage.prompt_tokens == chat["usage"]["prompt_tokens"]
    plain = _greedy(client, "Hello", max_tokens=6)
    assert plain.usage.prompt_tokens < raw.usage.prompt_tokens


def test_token_ids_are_the_same_prompt(client: OpenAI, chat_server: LiveServer) -> None:
    tokenizer = chat_server.app.state.mm.runtime.deployments["tiny-text"].engine.tokenizer
    ids = tokenizer("A picture is worth")["input_ids"]
    by_text, by_ids = _greedy(client, "A picture is worth", max_tokens=6), _greedy(client, ids, max_tokens=6)
    assert by_ids.choices[0].text == by_text.choices[0].text and by_ids.usage.prompt_tokens == len(ids)
    both = _greedy(client, [ids, ids[:2]], max_tokens=6)
    assert len(both.choices) == 2 and both.choices[0].text == by_text.choices[0].text


def test_several_prompts_times_n_in_prompt_order_each_prompt_counted_once(client: OpenAI) -> None:
    prompts = ["The cat sits", "Mountains, rivers and"]
    r = client.completions.create(model="tiny-text", prompt=prompts, n=2, max_tokens=5, seed=11)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    alone = [client.completions.create(model="tiny-text", prompt=p, n=2, max_tokens=5, seed=11) for p in prompts]
    assert [c.text for c in r.choices] == [c.text for a in alone for c in a.choices]  # seed + j per prompt
    assert r.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in alone)
    assert r.usage.completion_tokens == sum(a.usage.completion_tokens for a in alone)


def test_echo_prepends_the_prompt(client: OpenAI) -> None:
    plain = _greedy(client, "Two cats in boxing gear", max_tokens=5).choices[0].text
    echoed = _greedy(client, "Two cats in boxing gear", max_tokens=5, echo=True).choices[0].text
    assert echoed == "Two cats in boxing gear" + plain


def test_stop_ends_the_text_before_the_stop_sequence(client: OpenAI) -> None:
    full = _greedy(client, "Numbers:", max_tokens=24).choices[0].text
    assert len(full) > 4, full
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = _greedy(client, "Numbers:", max_tokens=24, stop=[stop]).choices[0]
    assert cut.finish_reason == "stop" and cut.text == full[: full.index(stop)]


def test_stream_matches_the_plain_answer_with_echo_and_usage(client: OpenAI) -> None:
    plain = _greedy(client, "Hello, how can", max_tokens=8)
    chunks = list(
        client.completions.create(
            model="tiny-text",
            prompt="Hello, how can",
            max_tokens=8,
            temperature=0,
            echo=True,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "Hello, how can" + plain.choices[0].text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
    assert all(c.object == "text_completion" for c in chunks)


def test_a_failure_mid_stream_is_an_error_event(base_url: str) -> None:
    body = {"model": "broken-gpt2", "prompt": "Hello there", "max_tokens": 60, "temperature": 0, "stream": True}
    events = []
    with httpx.stream("POST", f"{base_url}/completions", json=body, timeout=60) as resp:
        assert resp.status_code == 200
        events = [line.removeprefix("data: ") for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    err = json.loads(events[-2])["error"]
    assert err["type"] == "server_error" and "index" not in err["message"].lower()


def test_usage_is_metered(base_url: str, client: OpenAI) -> None:
    def totals() -> dict:
        return httpx.get(f"{base_url}/usage", params={"model": "tiny-text"}, timeout=30).json()["total"]

    before = totals()
    r = client.completions.create(model="tiny-text", prompt=["a", "b"], max_tokens=3)
    after = totals()
    assert after["requests"] - before["requests"] == 1
    assert after["input_tokens"] - before["input_tokens"] == r.usage.prompt_tokens
    assert after["output_tokens"] - before["output_tokens"] == r.usage.completion_tokens


def test_auto_routes_to_a_chat_card(base_url: str) -> None:
    r = httpx.post(f"{base_url}/completions", json={"model": "auto", "prompt": "Hi", "max_tokens": 2}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["x-mmserve-route"].startswith("auto:") and r.json()["model"] == r.headers["x-mmserve-model"]


def test_logprobs_in_the_legacy_shape(client: OpenAI) -> None:
    r = _greedy(client, "The quick brown fox", max_tokens=6, logprobs=2)
    lp = r.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs and lp.text_offset
    assert "".join(lp.tokens) == r.choices[0].text
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert logprob <= 0 and token in top and len(top) <= 3
        assert logprob == max(top.values())  # greedy: the sampled token is the most likely one
    streamed = [
        c.choices[0].logprobs
        for c in client.completions.create(
            model="tiny-text", prompt="The quick brown fox", max_tokens=6, temperature=0, logprobs=2, stream=True
        )
        if c.choices and c.choices[0].logprobs
    ]
    assert [t for s in streamed for t in s.tokens] == lp.tokens
    assert [o for s in streamed for o in s.text_offset] == lp.text_offset
    assert _greedy(client, "The quick brown fox", max_tokens=6).choices[0].logprobs is None
