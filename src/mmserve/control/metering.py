"""What services call when a request is done: one usage record, metrics, and the key's token budget."""

from __future__ import annotations

import time
from collections.abc import Callable

from mmserve.cards import ModelCard
from mmserve.control.context import current
from mmserve.control.ratelimit import Limiter
from mmserve.control.usage import UsageEvent, UsageRecorder, cost_of
from mmserve.metrics import Metrics


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
        self.metrics.model_requests.labels(card.id, card.task).inc()
        if input_tokens:
            self.metrics.tokens.labels(card.id, "input").inc(input_tokens)
        if output_tokens:
            self.metrics.tokens.labels(card.id, "output").inc(output_tokens)
        if key is not None:
            self.limiter.charge(key, input_tokens + output_tokens)
        for observe in self.on_latency:
            observe(card.id, event.latency_s)
        return event
