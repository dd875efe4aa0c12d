"""Response shapes: OpenAI's video object and list, and DO's generation object with ``output.url``."""

from __future__ import annotations

import time
from typing import Any

from mmserve.jobs.store import VideoJob
from mmserve.settings import JobSettings

POLL_HEADER = "openai-poll-after-ms"


def format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def video_object(job: VideoJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": job.status,
        "progress": job.progress,
        "created_at": int(job.created_at),
        "completed_at": _ts(job.completed_at),
        "expires_at": _ts(job.expires_at),
        "prompt": job.prompt,
        "seconds": format_seconds(job.seconds),
        "size": f"{job.width}x{job.height}",
        "fps": job.fps,  # DO dialect / mmserve: the clip's frame rate
        "error": {"code": job.error_code, "message": job.error_message} if job.status == "failed" else None,
        "remixed_from_video_id": job.params.get("remixed_from_video_id"),
    }


def video_list(jobs: list[VideoJob], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [video_object(j) for j in jobs],
        "first_id": jobs[0].id if jobs else None,
        "last_id": jobs[-1].id if jobs else None,
        "has_more": has_more,
    }


def generation_object(job: VideoJob, urls: dict[str, str] | None) -> dict[str, Any]:
    """DO's ``GET /v1/video/generations/{id}``: the job plus ``output.url`` (signed) once completed."""
    return {**video_object(job), "job_id": job.id, "output": urls, "x_request_id": None}


def poll_after_ms(job: VideoJob, cfg: JobSettings) -> int:
    """When to look again: about half the estimated time left, within the configured bounds.

    The openai SDK reads this once, on its first poll, and keeps that interval for the whole
    job; without an estimate yet (queued, no progress) it is ``poll_after_ms_default``.
    """
    lo, hi = cfg.poll_after_ms_min, max(cfg.poll_after_ms_min, cfg.poll_after_ms_max)
    if job.terminal:
        return lo
    if job.status == "queued" or job.started_at is None or job.progress <= 0:
        return min(hi, max(lo, cfg.poll_after_ms_default))
    elapsed = max(0.0, time.time() - job.started_at)
    done = job.progress / 100
    remaining_ms = elapsed * (1 - done) / done * 1000
    return int(min(hi, max(lo, remaining_ms / 2)))
