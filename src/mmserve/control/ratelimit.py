"""Per-key request and token rate limits over a sliding 60-second window.

Requests are counted at admission; tokens are charged when the request finishes (they are
only known then), so a key over its token budget is refused from its next request on.
Hand-written rather than a library: the window must be checked and charged in two steps
(admission, then completion), which the usual token-bucket libraries do not model.

Two implementations of one :class:`Limiter` interface: :class:`RateLimiter` counts in this
process (one gateway); :class:`mmserve.control.redis_limits.RedisRateLimiter` counts in Redis,
so that every gateway behind a load balancer enforces the same budget.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from mmserve.errors import RateLimitError

WINDOW_S = 60.0


@dataclass
class Limits:
    requests_per_min: int | None = None
    tokens_per_min: int | None = None


@dataclass
class WindowState:
    """One key's window as admission saw it: counts and the seconds until each starts to free up."""

    requests: int = 0
    requests_reset_s: float = 0.0
    tokens: int = 0
    tokens_reset_s: float = 0.0


class Limiter(Protocol):
    async def admit(self, key_id: str, limits: Limits) -> dict[str, str]:
        """Count one request or raise a 429; returns the rate-limit headers for the response."""

    def charge(self, key_id: str, tokens: int) -> None:
        """Add a finished request's tokens to the key's window (never blocks the caller)."""


def headers(limits: Limits, state: WindowState) -> dict[str, str]:
    h: dict[str, str] = {}
    if limits.requests_per_min is not None:
        h["x-ratelimit-limit-requests"] = str(limits.requests_per_min)
        h["x-ratelimit-remaining-requests"] = str(max(0, limits.requests_per_min - state.requests))
        h["x-ratelimit-reset-requests"] = f"{max(0.0, state.requests_reset_s):.1f}s"
    if limits.tokens_per_min is not None:
        h["x-ratelimit-limit-tokens"] = str(limits.tokens_per_min)
        h["x-ratelimit-remaining-tokens"] = str(max(0, limits.tokens_per_min - state.tokens))
        h["x-ratelimit-reset-tokens"] = f"{max(0.0, state.tokens_reset_s):.1f}s"
    return h


def refuse(what: str, retry_s: float, limits: Limits, state: WindowState) -> RateLimitError:
    retry = max(1, math.ceil(retry_s))
    if what == "requests":
        message = f"This key is limited to {limits.requests_per_min} requests per minute."
    else:
        message = f"This key is limited to {limits.tokens_per_min} tokens per minute."
    return RateLimitError(
        f"{message} Retry after {retry} s.", headers={"Retry-After": str(retry), **headers(limits, state)}
    )


@dataclass
class _Window:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0

    def trim(self, now: float) -> None:
        edge = now - WINDOW_S
        while self.requests and self.requests[0] <= edge:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= edge:
            self.token_sum -= self.tokens.popleft()[1]

    def state(self, now: float) -> WindowState:
        return WindowState(
            requests=len(self.requests),
            requests_reset_s=(self.requests[0] + WINDOW_S - now) if self.requests else 0.0,
            tokens=self.token_sum,
            tokens_reset_s=(self.tokens[0][0] + WINDOW_S - now) if self.tokens else 0.0,
        )


class RateLimiter:
    """In this process's memory: right for one gateway."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._now = time.monotonic

    async def admit(self, key_id: str, limits: Limits) -> dict[str, str]:
        now = self._now()
        w = self._windows.setdefault(key_id, _Window())
        w.trim(now)
        rpm, tpm = limits.requests_per_min, limits.tokens_per_min
        if rpm is not None and len(w.requests) >= rpm:
            retry = (w.requests[0] + WINDOW_S - now) if w.requests else WINDOW_S  # a limit of 0: never
            raise refuse("requests", retry, limits, w.state(now))
        if tpm is not None and w.token_sum >= tpm:
            raise refuse("tokens", self._token_reset(w, tpm, now), limits, w.state(now))
        w.requests.append(now)
        return headers(limits, w.state(now))

    def charge(self, key_id: str, tokens: int) -> None:
        if tokens <= 0:
            return
        w = self._windows.setdefault(key_id, _Window())
        w.tokens.append((self._now(), tokens))
        w.token_sum += tokens

    def _token_reset(self, w: _Window, tpm: int, now: float) -> float:
        """Seconds until enough charged tokens leave the window to fall under the limit."""
        excess = w.token_sum - tpm + 1
        for t, n in w.tokens:
            excess -= n
            if excess <= 0:
                return t + WINDOW_S - now
        return WINDOW_S
