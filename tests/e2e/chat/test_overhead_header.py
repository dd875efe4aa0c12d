"""x-mmserve-overhead-ms: the gateway's own time per request, the model's time left out."""

from __future__ import annotations

import time

import httpx
from openai import OpenAI

from tests.helpers import faulty


def _overhead(headers: httpx.Headers) -> float:
    value = float(headers["x-mmserve-overhead-ms"])
    assert value >= 0
    return value


def test_the_header_leaves_the_models_time_out(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="none", max_retries=0)
    messages = [{"role": "user", "content": "count"}]
    client.chat.completions.create(model="slow-text", messages=messages, max_tokens=2)  # warm
    before = len(faulty.steps)
    start = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(model="slow-text", messages=messages, max_tokens=16)
    elapsed_ms = (time.perf_counter() - start) * 1000
    steps = len(faulty.steps) - before
    assert steps >= 1 and raw.parse().choices
    # each decoding step slept STEP_S inside the model: none of that is the gateway's
    assert _overhead(raw.headers) <= elapsed_ms - steps * faulty.STEP_S * 1000


def test_every_answer_carries_it_streams_and_errors_too(base_url: str) -> None:
    body = {"model": "tiny-text", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    with httpx.stream("POST", f"{base_url}/chat/completions", json={**body, "stream": True}, timeout=60) as r:
        assert r.status_code == 200 and _overhead(r.headers) >= 0
        r.read()
    missing = httpx.post(f"{base_url}/chat/completions", json={**body, "model": "no-such-model"}, timeout=60)
    assert missing.status_code == 404 and _overhead(missing.headers) >= 0
    assert _overhead(httpx.get(f"{base_url}/models", timeout=60).headers) >= 0
