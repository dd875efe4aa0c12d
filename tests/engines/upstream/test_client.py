"""The shared upstream client against the loopback fake provider: retries, Retry-After, errors, limits, pools."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mmserve.engines.upstream.client import _POOLS, UpstreamClient
from mmserve.engines.upstream.options import UpstreamOptions
from mmserve.errors import (
    EngineUnavailableError,
    InvalidRequestError,
    OverloadedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from tests.helpers.fake_provider import FakeProvider
from tests.helpers.server import free_port

KEY_ENV = "MMSERVE_TEST_CLIENT_KEY"
IMAGE = {"model": "m", "prompt": "a red square", "n": 1, "size": "8x8"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as p:
        yield p


@pytest.fixture(autouse=True)
def fresh(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.reset()
    monkeypatch.setenv(KEY_ENV, fake.key)


def client(fake: FakeProvider, card: str = "remote", **options: Any) -> UpstreamClient:
    opts = UpstreamOptions(base_url=fake.base_url, api_key_env=KEY_ENV, retry_backoff_s=0.01, **options)
    c = UpstreamClient(card, opts)
    c.check_key()
    return c


def statuses(fake: FakeProvider, path: str, since: int) -> list[int]:
    return [status for _, p, status in fake.hits[since:] if p == path]


async def test_a_429_is_retried_after_the_retry_after_it_asks_for(fake: FakeProvider) -> None:
    fake.fail_next(429, path="/v1/images", retry_after="1")
    c = client(fake)
    since = len(fake.hits)
    answer = await c.request_json("POST", "/images/generations", json=IMAGE)
    await c.aclose()
    assert len(answer["data"]) == 1
    hits = [h for h in fake.hits[since:] if h[1] == "/v1/images/generations"]
    assert [h[2] for h in hits] == [429, 200]
    assert hits[1][0] - hits[0][0] >= 0.99  # it waited the second asked, not its own short backoff


async def test_a_retry_after_longer_than_mmserve_waits_fails_at_once_carrying_it(fake: FakeProvider) -> None:
    fake.fail_next(429, path="/v1/images", retry_after="120", times=3)
    c = client(fake, max_retry_wait_s=5)
    since = len(fake.hits)
    with pytest.raises(OverloadedError) as e:
        await c.request_json("POST", "/images/generations", json=IMAGE)
    await c.aclose()
    assert statuses(fake, "/v1/images/generations", since) == [429]  # no wait, no retry: a router falls back now
    assert e.value.status_code == 503 and e.value.headers["Retry-After"] == "120"
    assert e.value.code == "upstream_rate_limited" and "'127.0.0.1'" in e.value.message


async def test_5xx_is_retried_then_a_502_naming_the_provider_without_its_key(fake: FakeProvider) -> None:
    fake.fail_next(500, path="/v1/images", times=3)
    c = client(fake, max_retries=2, provider="fakeai")
    since = len(fake.hits)
    with pytest.raises(UpstreamError) as e:
        await c.request_json("POST", "/images/generations", json=IMAGE)
    assert statuses(fake, "/v1/images/generations", since) == [500, 500, 500]
    err = e.value
    assert err.status_code == 502 and err.code == "upstream_error"
    assert "fakeai" in err.message and "remote" in err.message and "HTTP 500" in err.message
    assert fake.key not in err.message and "[key]" in err.message  # the fake echoes the key: blanked
    fake.fail_next(503, path="/v1/images")  # one failure, then the retry succeeds
    assert (await c.request_json("POST", "/images/generations", json=IMAGE))["data"]
    await c.aclose()


async def test_a_provider_slower_than_the_timeout_is_a_504(fake: FakeProvider) -> None:
    fake.delay_s = 3
    c = client(fake, timeout_s=0.3, max_retries=0)
    with pytest.raises(UpstreamTimeoutError) as e:
        await c.request_json("POST", "/images/generations", json=IMAGE)
    await c.aclose()
    assert e.value.status_code == 504 and "took too long to answer" in e.value.message


async def test_an_unreachable_provider_is_a_502() -> None:
    opts = UpstreamOptions(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, retry_backoff_s=0.01)
    c = UpstreamClient("remote", opts)
    with pytest.raises(UpstreamError) as e:
        await c.request_json("GET", "/models")
    await c.aclose()
    assert e.value.code == "upstream_unreachable" and e.value.status_code == 502


async def test_what_the_provider_refuses_in_the_request_is_a_400_with_its_param(fake: FakeProvider) -> None:
    c = client(fake)
    with pytest.raises(InvalidRequestError) as e:  # the fake speaks pcm only
        await c.request_json("POST", "/audio/speech", json={"model": "m", "input": "hi", "response_format": "mp3"})
    await c.aclose()
    assert e.value.status_code == 400 and e.value.param == "response_format"
    assert e.value.code == "upstream_invalid_request" and "pcm only" in e.value.message


async def test_a_refused_key_is_a_502_naming_the_variable_not_the_key(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key")
    c = client(fake, max_retries=0)
    with pytest.raises(UpstreamError) as e:
        await c.request_json("POST", "/images/generations", json=IMAGE)
    await c.aclose()
    assert e.value.code == "upstream_auth" and KEY_ENV in e.value.message and "sk-wrong-key" not in e.value.message


def test_a_missing_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    c = UpstreamClient("remote", UpstreamOptions(base_url="https://api.example.com/v1", api_key_env=KEY_ENV))
    with pytest.raises(EngineUnavailableError, match=KEY_ENV):
        c.check_key()


async def test_cards_of_one_provider_share_one_pool_and_its_concurrency_limit(fake: FakeProvider) -> None:
    a = client(fake, "card-a", max_concurrency=1, queue_timeout_s=0.3)
    b = client(fake, "card-b", max_concurrency=1, queue_timeout_s=0.3)
    other = client(fake, "card-c", max_concurrency=2)  # other limits: its own pool
    assert a.pool() is b.pool() and other.pool() is not a.pool()
    fake.gate = threading.Event()  # the speech stream stops after its first piece: a slot stays taken
    body = {"model": "m", "input": "one two three", "voice": "alloy", "response_format": "pcm"}
    async with a.stream("POST", "/audio/speech", json=body) as resp:
        pieces = resp.aiter_bytes()
        assert await anext(pieces)
        with pytest.raises(OverloadedError) as e:  # card-b waits for the provider's one slot, then gives up
            await b.request_json("POST", "/images/generations", json=IMAGE)
        assert e.value.code == "upstream_busy" and e.value.headers["Retry-After"] == "1"
        assert (await other.request_json("POST", "/images/generations", json=IMAGE))["data"]  # not limited by it
        fake.gate.set()
        async for _ in pieces:
            pass
    assert (await b.request_json("POST", "/images/generations", json=IMAGE))["data"]  # the slot came back
    pool = a.pool()
    await a.aclose()
    assert not pool.is_closed  # card-b still uses it
    await b.aclose()
    await other.aclose()
    assert pool.is_closed and pool not in _POOLS.values()


async def test_an_answer_larger_than_the_limit_is_refused(fake: FakeProvider) -> None:
    c = client(fake, max_response_bytes=1024)
    with pytest.raises(UpstreamError) as e:
        await c.request_json("POST", "/images/generations", json={**IMAGE, "size": "256x256"})
    await c.aclose()
    assert e.value.code == "upstream_bad_response" and "1024 byte" in e.value.message


async def test_requests_in_other_event_loops_get_their_own_pool(fake: FakeProvider) -> None:
    c = client(fake)
    here = c.pool()

    def elsewhere() -> Any:
        async def run() -> Any:
            pool = c.pool()
            await c.request_json("POST", "/images/generations", json=IMAGE)
            return pool

        return asyncio.run(run())

    there = await asyncio.to_thread(elsewhere)
    assert there is not here
