"""Video usage: a finished job is billed to its owner for the seconds of video it produced."""

from __future__ import annotations

from typing import Any

from mmserve.api.state import AppState
from mmserve.control.metering import cost_value
from mmserve.control.usage import UsageEvent, cost_of
from mmserve.jobs.store import VideoJob


def meter_video(state: AppState, job: VideoJob) -> None:
    """Called once per completed job (the job runner's ``on_completed`` hook)."""
    card = state.catalog.cards.get(job.model)
    if card is not None:
        engine_s = sum((job.timings or {}).values())
        state.meter.record(card, "videos", key_id=job.owner, video_seconds=job.video_seconds or 0.0, latency_s=engine_s)


def video_usage(state: AppState, job: VideoJob) -> dict[str, Any] | None:
    """A completed job's usage as it is billed: the seconds it produced at the card's price."""
    card = state.catalog.cards.get(job.model)
    if job.status != "completed" or card is None:
        return None
    seconds = job.video_seconds or 0.0
    cost = cost_of(card, UsageEvent(model=card.id, task=card.task, endpoint="videos", video_seconds=seconds))
    return {"video_seconds": seconds, "cost": cost_value(cost)}
