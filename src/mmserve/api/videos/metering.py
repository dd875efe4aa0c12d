"""Video usage: a finished job is billed to its owner for the seconds of video it produced."""

from __future__ import annotations

from mmserve.api.state import AppState
from mmserve.jobs.store import VideoJob


def meter_video(state: AppState, job: VideoJob) -> None:
    """Called once per completed job (the job runner's ``on_completed`` hook)."""
    card = state.catalog.cards.get(job.model)
    if card is not None:
        engine_s = sum((job.timings or {}).values())
        state.meter.record(card, "videos", key_id=job.owner, video_seconds=job.video_seconds or 0.0, latency_s=engine_s)
