"""What services call when a request is done: one usage record, metrics, and the key's token budget.

The request's cost (USD, from the card's prices) also goes to the client: in the
``x-mmserve-cost`` response header when the response has not started yet (every response
but a stream), and as ``usage.cost`` in the bodies whose shape has a usage object.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mmserve.cards import ModelCard
from mmserve.control.context import current
from mmserve.control.ratelimit import Limiter
from mmserve.control.usage import UsageEvent, UsageRecorder, cost_of
from mmserve.metrics import Metrics

COST_HEADER = "x-mmserve-cost"


def cost_text(cost: float) -> str:
    """USD as a plain decimal ("0.0000016", never "1.6e-06"), to 10 places."""
    return f"{cost:.10f}".rstrip("0").rstrip(".") or "0"


def cost_value(cost: float) -> float:
    """The cost as response bodies show it: rounded to 10 places (no float noise like 2.0000000000000002e-06)."""
    return round(cost, 10)


class Meter:
    def __init__(self, recorder: UsageRecorder, metrics: Metrics, limiter: Limiter) -> None:
        self.recorder = recorder
        self.metrics = metrics
        self.limiter = limiter
        #: called with (model, latency seconds) for every request (routing's "fastest" policy)
        self.on_latency: list[Callable[[str, float], None]] = []

    def record(
        self,
        card: ModelCard,
        endpoint: str,
        *,
        key_id: str | None = None,
        latency_s: float | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        image_tokens: int = 0,
        images: int = 0,
        audio_seconds: float = 0.0,
        video_seconds: float = 0.0,
    ) -> UsageEvent:
        """Record one served request. ``key_id`` defaults to the current request's key."""
        ctx = current()
        key = key_id if key_id is not None else ctx.principal.key_id
        event = UsageEvent(
            model=card.id,
            task=card.task,
            endpoint=endpoint,
            key_id=key,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            image_tokens=image_tokens,
            images=images,
            audio_seconds=audio_seconds,
            video_seconds=video_seconds,
            latency_s=latency_s if latency_s is not None else time.perf_counter() - ctx.started,
        )
        event.cost = cost_of(card, event)
        self.recorder.record(event)
        ctx.headers[COST_HEADER] = cost_text(event.cost)  # sent if the response has not started
        m = self.metrics
        m.child(m.model_requests, card.id, card.task).inc()
        if input_tokens:
            m.child(m.tokens, card.id, "input").inc(input_tokens)
        if output_tokens:
            m.child(m.tokens, card.id, "output").inc(output_tokens)
        if key is not None:
            self.limiter.charge(key, input_tokens + output_tokens)
        for observe in self.on_latency:
            observe(card.id, event.latency_s)
        return event
