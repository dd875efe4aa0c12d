"""Where a request's time goes: in a model (held through ``Deployment.acquire``) or in the gateway.

The gateway's own time, reported per request in the ``x-mmserve-overhead-ms`` response header, is
the time from the request's arrival to its response's start less the time spent admitted to a
model: queued for it, loading it, running it (a local engine, or an upstream provider's call).
What is left is mmserve's: parsing, auth, routing, validation, metering, encoding the answer.

A :class:`RequestClock` lives in a ContextVar for the request (set by the request-context
middleware); tasks spawned for the request copy the context and so share the clock. Overlapping
holds (``n`` choices run side by side) count once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class RequestClock:
    __slots__ = ("engine_s", "entered", "held", "start")

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.engine_s = 0.0  # time with at least one model held, finished holds
        self.held = 0
        self.entered = 0.0

    def overhead_s(self, now: float | None = None) -> float:
        """The gateway's own time so far."""
        now = time.perf_counter() if now is None else now
        engine = self.engine_s + (now - self.entered if self.held else 0.0)
        return max(0.0, now - self.start - engine)


CLOCK: ContextVar[RequestClock | None] = ContextVar("mmserve_clock", default=None)


@contextmanager
def in_model() -> Iterator[None]:
    """Count the block as the model's time for the current request (nothing outside a request)."""
    clock = CLOCK.get()
    if clock is None:
        yield
        return
    if not clock.held:
        clock.entered = time.perf_counter()
    clock.held += 1
    try:
        yield
    finally:
        clock.held -= 1
        if not clock.held:
            clock.engine_s += time.perf_counter() - clock.entered
