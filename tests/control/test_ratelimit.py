from __future__ import annotations

import pytest

from mmserve.control.ratelimit import Limits, RateLimiter
from mmserve.errors import RateLimitError


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def limiter() -> tuple[RateLimiter, Clock]:
    rl, clock = RateLimiter(), Clock()
    rl._now = clock
    return rl, clock


async def test_requests_per_minute(limiter: tuple[RateLimiter, Clock]) -> None:
    rl, clock = limiter
    lim = Limits(requests_per_min=2)
    h = await rl.admit("k", lim)
    assert h["x-ratelimit-remaining-requests"] == "1"
    await rl.admit("k", lim)
    with pytest.raises(RateLimitError) as e:
        await rl.admit("k", lim)
    assert e.value.status_code == 429 and e.value.headers["Retry-After"] == "60"
    assert e.value.headers["x-ratelimit-remaining-requests"] == "0"
    await rl.admit("other", lim)  # keys are independent
    clock.t += 60.5
    await rl.admit("k", lim)  # the window slid


async def test_tokens_per_minute_charged_after(limiter: tuple[RateLimiter, Clock]) -> None:
    rl, clock = limiter
    lim = Limits(tokens_per_min=100)
    await rl.admit("k", lim)
    rl.charge("k", 60)
    clock.t += 10
    await rl.admit("k", lim)
    rl.charge("k", 50)
    with pytest.raises(RateLimitError) as e:
        await rl.admit("k", lim)
    assert "tokens per minute" in e.value.message
    assert e.value.headers["Retry-After"] == "50"  # when the first 60 tokens leave the window
    clock.t += 50.5
    assert (await rl.admit("k", lim))["x-ratelimit-remaining-tokens"] == "50"


async def test_no_limits_no_headers(limiter: tuple[RateLimiter, Clock]) -> None:
    rl, _ = limiter
    for _ in range(100):
        assert await rl.admit("k", Limits()) == {}


async def test_a_zero_limit_refuses_every_request(limiter: tuple[RateLimiter, Clock]) -> None:
    """A key with 0 requests (or tokens) per minute is switched off: always a 429, never a crash."""
    rl, _ = limiter
    for lim in (Limits(requests_per_min=0), Limits(tokens_per_min=0)):
        with pytest.raises(RateLimitError) as e:
            await rl.admit("k", lim)
        assert e.value.headers["Retry-After"] == "60"
