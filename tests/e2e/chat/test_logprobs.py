"""logprobs, top_logprobs and ignore_eos through the openai SDK (transformers engine)."""

from __future__ import annotations

import math

import openai
import pytest
from openai import OpenAI

from tests.helpers.images import data_uri

MESSAGES = [{"role": "user", "content": "Tell me something."}]


@pytest.fixture
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def test_plain_answer_logprobs_are_the_greedy_tokens(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny-text", messages=MESSAGES, max_tokens=10, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = r.choices[0]
    assert choice.logprobs is not None and choice.logprobs.refusal is None
    entries = choice.logprobs.content
    assert entries
    assert r.usage is not None
    # every generated token has an entry (an end-of-sequence token has none: it is not output)
    assert len(entries) == r.usage.completion_tokens - (choice.finish_reason == "stop")
    assert "".join(e.token for e in entries) == choice.message.content
    for e in entries:
        assert e.bytes == list(e.token.encode())
        assert len(e.top_logprobs) == 3
        values = [t.logprob for t in e.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert all(v <= 0 for v in values)
        assert sum(math.exp(v) for v in values) <= 1 + 1e-4
        # greedy: the chosen token is the most likely one
        assert e.token == e.top_logprobs[0].token and e.logprob == pytest.approx(values[0])


def test_sampled_logprobs_come_from_the_sampling_distribution(client: OpenAI) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hi"}, _image()]}]

    def first(**kw: object) -> list[tuple[str, float]]:
        r = client.chat.completions.create(
            model="demo-vlm", messages=messages, max_tokens=1, seed=7, logprobs=True, top_logprobs=20, **kw
        )  # type: ignore[call-overload]
        return [(t.token, t.logprob) for t in r.choices[0].logprobs.content[0].top_logprobs]

    greedy, warm = first(temperature=0), first(temperature=0.5)
    # the same ranking, with gaps scaled by 1 / temperature
    assert [t for t, _ in greedy] == [t for t, _ in warm]
    for (_, g), (_, w) in zip(greedy[1:], warm[1:], strict=True):
        assert warm[0][1] - w == pytest.approx((greedy[0][1] - g) / 0.5, rel=1e-3, abs=1e-3)
    # top_p cuts the distribution: what is left holds all of its mass; cut tokens are at -9999 (no -inf in JSON)
    cut = first(temperature=1.0, top_p=0.02)
    kept = [v for _, v in cut if v > -9999]
    assert 0 < len(kept) < 20 and all(v == -9999 for _, v in cut[len(kept) :])
    assert sum(math.exp(v) for v in kept) == pytest.approx(1.0, abs=1e-3)


def test_no_logprobs_unless_asked(client: OpenAI) -> None:
    r = client.chat.completions.create(model="tiny-text", messages=MESSAGES, max_tokens=4)
    assert r.choices[0].logprobs is None
    r = client.chat.completions.create(model="tiny-text", messages=MESSAGES, max_tokens=4, logprobs=False)
    assert r.choices[0].logprobs is None
    chunks = list(client.chat.completions.create(model="tiny-text", messages=MESSAGES, max_tokens=4, stream=True))
    assert all(c.choices[0].logprobs is None for c in chunks if c.choices)


def test_streamed_logprobs_match_the_plain_answer(client: OpenAI) -> None:
    kwargs = {"model": "tiny-text", "messages": MESSAGES, "max_tokens": 12, "seed": 3, "logprobs": True}
    plain = client.chat.completions.create(**kwargs, top_logprobs=2)  # type: ignore[call-overload]
    stream = client.chat.completions.create(**kwargs, top_logprobs=2, stream=True, n=2)  # type: ignore[call-overload]
    streamed: dict[int, list] = {0: [], 1: []}
    text: dict[int, str] = {0: "", 1: ""}
    for chunk in stream:
        for c in chunk.choices:
            text[c.index] += c.delta.content or ""
            if c.logprobs is not None:
                assert c.logprobs.content
                streamed[c.index] += c.logprobs.content
    expected = plain.choices[0].logprobs.content  # type: ignore[union-attr]
    assert [e.token for e in streamed[0]] == [e.token for e in expected]
    # the same tokens; batched with the second choice, the float sums may round differently (~1e-6)
    assert [e.logprob for e in streamed[0]] == pytest.approx([e.logprob for e in expected], abs=1e-4)
    assert text[0] == plain.choices[0].message.content
    # sampled special tokens (e.g. "</s>") have entries but no text in the content
    assert streamed[1] and "".join(e.token for e in streamed[1] if not _special(e.token)) == text[1]


def test_top_logprobs_needs_logprobs(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny-text", messages=MESSAGES, top_logprobs=2)
    assert e.value.body["param"] == "top_logprobs"  # type: ignore[index]
    assert "logprobs" in e.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny-text", messages=MESSAGES, logprobs=True, top_logprobs=21)
    assert e.value.body["param"] == "top_logprobs"  # type: ignore[index]


def _special(token: str) -> bool:
    return len(token) > 2 and token.startswith("<") and token.endswith(">")


def _image() -> dict:
    return {"type": "image_url", "image_url": {"url": data_uri()}}
