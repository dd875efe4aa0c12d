"""Response shapes and the poll hint."""

from __future__ import annotations

import time

from mmserve.api.videos.views import format_seconds, generation_object, poll_after_ms, video_object
from mmserve.settings import JobSettings
from tests.jobs.conftest import make_job

CFG = JobSettings(poll_after_ms_min=200, poll_after_ms_max=5000, poll_after_ms_default=1000)


def test_poll_hint_follows_the_estimate() -> None:
    assert poll_after_ms(make_job(status="queued"), CFG) == 1000
    now = time.time()
    running = make_job(status="in_progress", started_at=now - 4, progress=50)  # ~4 s left
    assert 1800 <= poll_after_ms(running, CFG) <= 2200
    nearly = make_job(status="in_progress", started_at=now - 10, progress=99)
    assert poll_after_ms(nearly, CFG) == 200
    slow = make_job(status="in_progress", started_at=now - 100, progress=5)
    assert poll_after_ms(slow, CFG) == 5000
    assert poll_after_ms(make_job(status="completed"), CFG) == 200


def test_video_object_shapes() -> None:
    job = make_job(seconds=0.5, width=96, height=64, created_at=1700000000.7, status="failed")
    job.error_code, job.error_message = "engine_error", "boom"
    body = video_object(job)
    assert body["seconds"] == "0.5" and body["size"] == "96x64" and body["created_at"] == 1700000000
    assert body["object"] == "video" and body["error"] == {"code": "engine_error", "message": "boom"}
    assert format_seconds(4.0) == "4" and format_seconds(12) == "12"
    do = generation_object(job, None)
    assert do["output"] is None and do["job_id"] == job.id and do["x_request_id"] is None
