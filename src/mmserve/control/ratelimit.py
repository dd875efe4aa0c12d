"""Per-key request and token rate limits over a sliding 60-second window (in memory).

Requests are counted at admission; tokens are charged when the request finishes (they are
only known then), so a key over its token budget is refused from its next request on.
Hand-written rather than a library: the window must be checked and charged in two steps
(admission, then completion), which the usual token-bucket libraries do not model.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from mmserve.errors import RateLimitError

WINDOW_S = 60.0


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


@dataclass
class Limits:
    requests_per_min: int | None = None
    tokens_per_min: int | None = None


class RateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._now = time.monotonic

    def admit(self, key_id: str, limits: Limits) -> dict[str, str]:
        """Count one request or raise a 429; returns the rate-limit headers for the response."""
        now = self._now()
        w = self._windows.setdefault(key_id, _Window())
        w.trim(now)
        rpm, tpm = limits.requests_per_min, limits.tokens_per_min
        if rpm is not None and len(w.requests) >= rpm:
            retry = (w.requests[0] + WINDOW_S - now) if w.requests else WINDOW_S  # a limit of 0: never
            raise self._refuse(f"This key is limited to {rpm} requests per minute.", retry, limits, w, now)
        if tpm is not None and w.token_sum >= tpm:
            retry = self._token_reset(w, tpm, now)
            raise self._refuse(f"This key is limited to {tpm} tokens per minute.", retry, limits, w, now)
        w.requests.append(now)
        return self.headers(limits, w, now)

    def charge(self, key_id: str, tokens: int) -> None:
        if tokens <= 0:
            return
        w = self._windows.setdefault(key_id, _Window())
        w.tokens.append((self._now(), tokens))
        w.token_sum += tokens

    def headers(self, limits: Limits, w: _Window, now: float) -> dict[str, str]:
        h: dict[str, str] = {}
        if limits.requests_per_min is not None:
            h["x-ratelimit-limit-requests"] = str(limits.requests_per_min)
            h["x-ratelimit-remaining-requests"] = str(max(0, limits.requests_per_min - len(w.requests)))
            reset = (w.requests[0] + WINDOW_S - now) if w.requests else 0.0
            h["x-ratelimit-reset-requests"] = f"{max(0.0, reset):.1f}s"
        if limits.tokens_per_min is not None:
            h["x-ratelimit-limit-tokens"] = str(limits.tokens_per_min)
            h["x-ratelimit-remaining-tokens"] = str(max(0, limits.tokens_per_min - w.token_sum))
            reset = (w.tokens[0][0] + WINDOW_S - now) if w.tokens else 0.0
            h["x-ratelimit-reset-tokens"] = f"{max(0.0, reset):.1f}s"
        return h

    def _token_reset(self, w: _Window, tpm: int, now: float) -> float:
        """Seconds until enough charged tokens leave the window to fall under the limit."""
        excess = w.token_sum - tpm + 1
        for t, n in w.tokens:
            excess -= n
            if excess <= 0:
                return t + WINDOW_S - now
        return WINDOW_S

    def _refuse(self, message: str, retry: float, limits: Limits, w: _Window, now: float) -> RateLimitError:
        headers = {"Retry-After": str(max(1, math.ceil(retry))), **self.headers(limits, w, now)}
        return RateLimitError(f"{message} Retry after {max(1, math.ceil(retry))} s.", headers=headers)
