"""Chat through the official openai SDK against a live server on the tiny VLM."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from mmserve.catalog.builders.vlm import IMAGE_TOKENS
from tests.helpers.images import data_uri


@pytest.fixture
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def _image_message(text: str, *uris: str) -> list[dict]:
    parts: list[dict] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": u}} for u in uris]
    return [{"role": "user", "content": parts}]


def test_base64_image_request(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="demo-vlm", messages=_image_message("What is shown in this image?", data_uri()), max_tokens=12
    )
    assert r.object == "chat.completion"
    assert r.model == "demo-vlm"
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None
    assert r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_image_tokens_counted_in_prompt(client: OpenAI) -> None:
    text = "Describe the image in one sentence."
    with_image = client.chat.completions.create(
        model="demo-vlm", messages=_image_message(text, data_uri()), max_tokens=1
    )
    without = client.chat.completions.create(model="demo-vlm", messages=_image_message(text), max_tokens=1)
    assert with_image.usage and without.usage
    assert with_image.usage.prompt_tokens - without.usage.prompt_tokens == IMAGE_TOKENS


def test_two_images_in_one_message_count_twice(client: OpenAI) -> None:
    text = "Compare these images."
    one = client.chat.completions.create(model="demo-vlm", messages=_image_message(text, data_uri()), max_tokens=1)
    two = client.chat.completions.create(
        model="demo-vlm",
        messages=_image_message(text, data_uri(color=(0, 0, 255)), data_uri(size=(300, 120), fmt="JPEG")),
        max_tokens=1,
    )
    assert one.usage and two.usage
    assert two.usage.prompt_tokens - one.usage.prompt_tokens == IMAGE_TOKENS


def test_images_across_messages(client: OpenAI) -> None:
    messages = [
        *_image_message("First picture.", data_uri(fmt="WEBP")),
        {"role": "assistant", "content": "I see it."},
        *_image_message("Second picture.", data_uri(color=(10, 200, 10))),
    ]
    r = client.chat.completions.create(model="demo-vlm", messages=messages, max_tokens=4)
    assert r.usage and r.usage.prompt_tokens > 2 * IMAGE_TOKENS


def test_streaming_with_usage_in_last_chunk(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="demo-vlm",
        messages=_image_message("What is in the image?", data_uri()),
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    # "length" exactly when the token budget was used up, "stop" when the model ended first
    assert (finishes[0] == "length") == (last.usage.completion_tokens == 10)
    assert finishes[0] in ("length", "stop") and last.usage.completion_tokens <= 10
    assert last.usage.prompt_tokens > IMAGE_TOKENS
    # the streamed text is the same as the non-streamed text for the same seed
    same = client.chat.completions.create(
        model="demo-vlm", messages=_image_message("What is in the image?", data_uri()), max_tokens=10, seed=7
    )
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="demo-vlm",
            messages=_image_message("What is in the image?", data_uri()),
            max_tokens=10,
            seed=7,
            stream=True,
        )
        if c.choices
    )
    assert streamed == same.choices[0].message.content
    assert text  # the first stream produced text too


def test_seed_reproducible_and_temperature_zero_greedy(client: OpenAI) -> None:
    msgs = [{"role": "user", "content": "Hello, how can I help you today?"}]
    a = client.chat.completions.create(model="demo-vlm", messages=msgs, max_tokens=16, seed=3, temperature=1.0)
    b = client.chat.completions.create(model="demo-vlm", messages=msgs, max_tokens=16, seed=3, temperature=1.0)
    c = client.chat.completions.create(model="demo-vlm", messages=msgs, max_tokens=16, seed=4, temperature=1.0)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.choices[0].message.content != c.choices[0].message.content
    g1 = client.chat.completions.create(model="demo-vlm", messages=msgs, max_tokens=16, temperature=0)
    g2 = client.chat.completions.create(model="demo-vlm", messages=msgs, max_tokens=16, temperature=0, seed=99)
    assert g1.choices[0].message.content == g2.choices[0].message.content


def test_n_choices(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="demo-vlm", messages=[{"role": "user", "content": "Hi"}], max_tokens=8, n=3, seed=1
    )
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert len({c.message.content for c in r.choices}) > 1
    assert r.usage and 3 <= r.usage.completion_tokens <= 24


def test_stop_sequence_cuts_output_and_finishes_with_stop(client: OpenAI) -> None:
    msgs = [{"role": "user", "content": "The quick brown fox"}]
    full = client.chat.completions.create(model="demo-vlm", messages=msgs, max_tokens=40, temperature=0)
    text = full.choices[0].message.content or ""
    assert full.choices[0].finish_reason == "length"
    # pick a stop string from the middle of what the model says greedily
    stop = next(
        text[i : i + 2] for i in range(3, len(text) - 2) if text[i : i + 2].strip() and text.find(text[i : i + 2]) == i
    )
    cut = client.chat.completions.create(model="demo-vlm", messages=msgs, max_tokens=40, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.find(stop)]
    streamed = client.chat.completions.create(
        model="demo-vlm", messages=msgs, max_tokens=40, temperature=0, stop=stop, stream=True
    )
    parts = list(streamed)
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == text[: text.find(stop)]
    assert [p.choices[0].finish_reason for p in parts if p.choices and p.choices[0].finish_reason] == ["stop"]


def test_max_completion_tokens_and_pharia_alias(client: OpenAI, base_url: str) -> None:
    r = client.chat.completions.create(
        model="demo-vlm", messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=3, temperature=0
    )
    assert r.usage and r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"
    root = base_url.removesuffix("/v1")
    body = {"model": "demo-vlm", "messages": [{"role": "user", "content": "Hi"}], "maximum_tokens": 2, "temperature": 0}
    resp = httpx.post(f"{root}/chat/completions", json=body, timeout=30)  # host root, as aleph-alpha posts
    assert resp.status_code == 200
    assert resp.json()["usage"]["completion_tokens"] == 2


async def test_concurrent_requests_match_sequential(base_url: str) -> None:
    """Concurrent seeded requests give exactly what each gives alone: no cross-talk between requests."""
    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    prompts = [f"Question number {i}: what is shown?" for i in range(6)]

    async def ask(i: int) -> str:
        r = await client.chat.completions.create(
            model="demo-vlm",
            messages=_image_message(prompts[i], data_uri(color=(i * 40, 0, 0))),
            max_tokens=12,
            seed=i,
        )
        return r.choices[0].message.content or ""

    sequential = [await ask(i) for i in range(6)]
    concurrent = await asyncio.gather(*(ask(i) for i in range(6)))
    assert list(concurrent) == sequential
    await client.close()


def test_system_and_developer_roles(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny-text",
        messages=[
            {"role": "developer", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        ],
        max_tokens=4,
        temperature=0,
    )
    assert r.model == "tiny-text" and r.usage and r.usage.completion_tokens == 4


def test_models_list_and_get(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["demo-vlm", "demo-audio", "tiny-text", "broken-gpt2", "faulty-choices", "slow-text"]
    m = client.models.retrieve("demo-vlm")
    extra = m.model_extra or {}
    assert extra["task"] == "chat"
    assert extra["capabilities"]["vision"] is True
    assert extra["deployment"]["mode"] == "dedicated" and extra["deployment"]["state"] == "loaded"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_several_choices_stream_as_they_are_generated(base_url: str) -> None:
    """n: 2 streams from the start: the first choice's tokens are not held back until it has finished."""
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    start = time.monotonic()
    arrivals = [
        time.monotonic() - start
        for chunk in client.chat.completions.create(
            model="slow-text",
            messages=[{"role": "user", "content": "Two answers, please."}],
            n=2,
            max_tokens=30,
            temperature=0,
            stream=True,
        )
        if chunk.choices and chunk.choices[0].delta.content
    ]
    total = time.monotonic() - start
    assert arrivals and arrivals[0] < total / 4, f"first content after {arrivals[0]:.2f} s of {total:.2f} s"
