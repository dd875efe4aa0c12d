"""State shared through a real Redis: rate-limit windows, key revocations and route cooldowns across gateways."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mmserve.control.keys import KeyStore
from mmserve.control.ratelimit import Limits
from mmserve.control.redis_limits import RedisRateLimiter
from mmserve.control.redis_state import RedisState
from mmserve.db import Database
from mmserve.errors import RateLimitError
from tests.helpers.server import free_port


@pytest_asyncio.fixture(loop_scope="function")
async def two(redis_url: str) -> AsyncIterator[tuple[RedisState, RedisState]]:
    """Two gateways' connections to one Redis."""
    a, b = RedisState(redis_url), RedisState(redis_url)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


async def test_a_request_budget_is_shared_by_every_gateway(two: tuple[RedisState, RedisState]) -> None:
    one, other = RedisRateLimiter(two[0]), RedisRateLimiter(two[1])
    lim = Limits(requests_per_min=3)
    h = await one.admit("k", lim)
    assert h["x-ratelimit-remaining-requests"] == "2" and h["x-ratelimit-limit-requests"] == "3"
    await other.admit("k", lim)
    assert (await one.admit("k", lim))["x-ratelimit-remaining-requests"] == "0"
    for limiter in (one, other):
        with pytest.raises(RateLimitError) as e:
            await limiter.admit("k", lim)
        assert 55 <= int(e.value.headers["Retry-After"]) <= 60
        assert "3 requests per minute" in e.value.message
    await other.admit("another-key", lim)  # keys are independent


async def test_two_gateways_admitting_the_last_request_at_once_admit_it_once(
    two: tuple[RedisState, RedisState],
) -> None:
    limiters = [RedisRateLimiter(two[i % 2]) for i in range(20)]
    results = await asyncio.gather(
        *(lim.admit("k", Limits(requests_per_min=7)) for lim in limiters), return_exceptions=True
    )
    assert sum(isinstance(r, dict) for r in results) == 7
    assert sum(isinstance(r, RateLimitError) for r in results) == 13


async def test_tokens_charged_on_one_gateway_count_on_the_other(two: tuple[RedisState, RedisState]) -> None:
    one, other = RedisRateLimiter(two[0]), RedisRateLimiter(two[1])
    lim = Limits(tokens_per_min=100)
    await one.admit("k", lim)
    one.charge("k", 60)
    await one.drain()
    assert (await other.admit("k", lim))["x-ratelimit-remaining-tokens"] == "40"
    other.charge("k", 50)
    await other.drain()
    with pytest.raises(RateLimitError) as e:
        await one.admit("k", lim)
    assert "100 tokens per minute" in e.value.message
    assert e.value.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_without_redis_limits_fail_open(caplog: pytest.LogCaptureFixture) -> None:
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    limiter = RedisRateLimiter(state)
    assert await limiter.admit("k", Limits(requests_per_min=1)) == {}
    assert await limiter.admit("k", Limits(requests_per_min=1)) == {}
    assert "rate limiting is off while Redis is unreachable" in caplog.text
    await state.client.aclose()


async def test_a_key_revoked_on_one_gateway_is_refused_on_the_other_within_a_second(
    two: tuple[RedisState, RedisState], tmp_path: Path
) -> None:
    db_a, db_b = Database(f"sqlite:///{tmp_path / 'k.db'}"), Database(f"sqlite:///{tmp_path / 'k.db'}")
    await db_a.upgrade()
    # caches that would keep a revoked key working for a minute without Redis
    a, b = KeyStore(db_a, cache_ttl_s=60), KeyStore(db_b, cache_ttl_s=60)
    for store, state in ((a, two[0]), (b, two[1])):
        store.on_revoke.append(state.publish_revoked)
        state.on_revoked.append(store.forget)
    try:
        key, secret = await a.create("shared")
        assert await a.lookup(secret) is not None and await b.lookup(secret) is not None  # both cached
        await a.revoke(key.id)
        revoked = time.monotonic()
        while await b.lookup(secret) is not None:
            assert time.monotonic() - revoked < 1.0, "gateway B still admits the revoked key"
            await asyncio.sleep(0.01)
    finally:
        await db_a.dispose()
        await db_b.dispose()


async def test_a_key_changed_on_one_gateway_is_read_anew_on_the_other_within_a_second(
    two: tuple[RedisState, RedisState], tmp_path: Path
) -> None:
    """The admin API's PATCH (limits, models) reaches every gateway like a revocation does."""
    db_a, db_b = Database(f"sqlite:///{tmp_path / 'k.db'}"), Database(f"sqlite:///{tmp_path / 'k.db'}")
    await db_a.upgrade()
    a, b = KeyStore(db_a, cache_ttl_s=60), KeyStore(db_b, cache_ttl_s=60)
    for store, state in ((a, two[0]), (b, two[1])):
        store.on_revoke.append(state.publish_revoked)
        state.on_revoked.append(store.forget)
    try:
        key, secret = await a.create("shared", requests_per_min=100)
        assert (await b.lookup(secret)).requests_per_min == 100  # type: ignore[union-attr]  # cached on B
        await a.update(key.id, requests_per_min=5, models=["m"])
        changed = time.monotonic()
        while (seen := await b.lookup(secret)) is not None and seen.requests_per_min != 5:
            assert time.monotonic() - changed < 1.0, "gateway B still applies the old limit"
            await asyncio.sleep(0.01)
        assert seen is not None and seen.models == ("m",)
    finally:
        await db_a.dispose()
        await db_b.dispose()


async def test_route_cooldowns_reach_every_gateway_and_late_starters(redis_url: str) -> None:
    a, b = RedisState(redis_url), RedisState(redis_url)
    seen_b: list[tuple[str, float]] = []
    b.on_cooldown.append(lambda m, s: seen_b.append((m, s)))
    await a.start()
    await b.start()
    try:
        a.report_cooldown("flaky-model", 30.0)
        deadline = time.monotonic() + 2
        while not seen_b and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert seen_b == [("flaky-model", 30.0)]
        late = RedisState(redis_url)
        seen_late: list[tuple[str, float]] = []
        late.on_cooldown.append(lambda m, s: seen_late.append((m, s)))
        await late.start()
        assert [m for m, _ in seen_late] == ["flaky-model"] and 25 < seen_late[0][1] <= 30
        await late.stop()
    finally:
        await a.stop()
        await b.stop()
