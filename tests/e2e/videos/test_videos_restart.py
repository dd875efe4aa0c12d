"""kill -9 the server while one job runs and others wait: after a restart every job finishes and downloads."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers.process import ServerProcess
from tests.helpers.videos import mp4_info

CATALOG = {
    "models": [
        {
            "id": "slow-video",
            "task": "video-generation",
            "engine": "diffusers-video",
            "source": "demo:video",
            # enough steps that a job is seen running for a while (200 steps took 0.5 s on a fast CPU),
            # while it is killed: its progress shows every 0.1 s, and the kill follows at once
            "options": {"steps": 400, "guidance_scale": 1.0},
            "capabilities": {"sizes": ["96x64"], "fps": [8], "durations": [2]},
            "deployment": {"mode": "dedicated", "max_concurrency": 1},
        }
    ]
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "catalog.yaml"
    config.write_text(yaml.safe_dump(CATALOG))
    srv = ServerProcess(tmp_path / "data", config, env={"MMSERVE_JOBS__PROGRESS_INTERVAL_S": "0.1"})
    yield srv
    srv.stop()


def _statuses(url: str, ids: list[str]) -> list[dict]:
    return [httpx.get(f"{url}/v1/videos/{i}", timeout=10).json() for i in ids]


@pytest.mark.slow
def test_every_job_survives_a_kill_9(server: ServerProcess) -> None:
    server.start(wait_for=["slow-video"])
    body = {"model": "slow-video", "prompt": "a lighthouse in a storm", "size": "96x64", "seconds": "2"}

    def submit() -> str:
        return str(httpx.post(f"{server.url}/v1/videos", json=body, timeout=10).json()["id"])

    first = submit()
    while (status := _statuses(server.url, [first])[0]["status"]) != "completed":
        assert status in ("queued", "in_progress"), status
        time.sleep(0.05)
    before = httpx.get(f"{server.url}/v1/videos/{first}/content", timeout=30).content
    ids = [first] + [submit() for _ in range(2)]

    # kill -9 as soon as one job is mid-run while others wait
    deadline = time.monotonic() + 180
    while True:
        jobs = _statuses(server.url, ids[1:])
        running = [j for j in jobs if j["status"] == "in_progress" and j["progress"] > 0]
        if running and any(j["status"] == "queued" for j in jobs):
            break
        assert all(j["status"] != "failed" for j in jobs) and time.monotonic() < deadline, jobs
        time.sleep(0.02)
    server.kill9()
    server.start(wait_for=["slow-video"])

    deadline = time.monotonic() + 240
    while True:
        jobs = _statuses(server.url, ids)
        if all(j["status"] in ("completed", "failed") for j in jobs):
            break
        assert time.monotonic() < deadline, [j["status"] for j in jobs]
        time.sleep(0.2)
    assert [j["status"] for j in jobs] == ["completed"] * 3, [j.get("error") for j in jobs]
    for i in ids:
        data = httpx.get(f"{server.url}/v1/videos/{i}/content", timeout=30).content
        assert mp4_info(data) == (16, 96, 64, 8.0, "h264")
    # the result finished before the crash is still there, byte for byte
    assert httpx.get(f"{server.url}/v1/videos/{first}/content", timeout=30).content == before
    # the job that was mid-run was recovered and started a second time
    with sqlite3.connect(server.data_dir / "mmserve.db") as db:
        attempts = dict(db.execute("SELECT id, attempts FROM video_jobs").fetchall())
    assert attempts[running[0]["id"]] == 2 and attempts[first] == 1
