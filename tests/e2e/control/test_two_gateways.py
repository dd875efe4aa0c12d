"""Two `mmserve serve` processes on one PostgreSQL + Redis, files on a shared directory: one service.

A key's rate limit holds across both; a key revoked through one is refused by the other within
a second; a video job submitted on one is polled and downloaded on the other; the gateway
running a job is killed (-9) mid-job and the other completes it; usage totals equal what
was sent, wherever it was sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from tests.helpers.process import ServerProcess
from tests.helpers.videos import mp4_info

CATALOG = {
    "models": [
        {
            "id": "tiny-text",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "pricing": {"input_per_1m_tokens": 10, "output_per_1m_tokens": 20},
            "deployment": {"mode": "dedicated"},
        },
        {
            "id": "slow-video",
            "task": "video-generation",
            "engine": "diffusers-video",
            "source": "demo:video",
            "options": {"steps": 1000, "guidance_scale": 1.0},  # seconds (200 steps: 0.5 s on a fast CPU): time to kill
            "capabilities": {"sizes": ["96x64"], "fps": [8], "durations": [2]},
            "deployment": {"mode": "dedicated", "max_concurrency": 1},
        },
    ]
}
ADMIN = "admin-secret"
VIDEO = {"model": "slow-video", "prompt": "a lighthouse in a storm", "size": "96x64", "seconds": "2"}


@pytest.fixture
def gateways(
    tmp_path: Path, models_dir: Path, pg_url: str, redis_url: str
) -> Iterator[tuple[ServerProcess, ServerProcess, dict[str, str]]]:
    config = tmp_path / "catalog.yaml"
    config.write_text(yaml.safe_dump(CATALOG))
    env = {
        "MMSERVE_DATABASE_URL": pg_url,
        "MMSERVE_REDIS_URL": redis_url,
        "MMSERVE_ARTIFACTS_DIR": str(tmp_path / "shared-artifacts"),
        "MMSERVE_SECRET_KEY": "one-secret-for-every-gateway",
        "MMSERVE_AUTH": "true",
        "MMSERVE_ADMIN_KEY": ADMIN,
        "MMSERVE_KEY_CACHE_TTL_S": "60",  # without Redis a revoked key would work for a minute
        "MMSERVE_USAGE_FLUSH_INTERVAL_S": "0.1",
        "MMSERVE_JOBS__PROGRESS_INTERVAL_S": "0.2",
        "MMSERVE_JOBS__DISPATCH_INTERVAL_S": "0.5",
        "MMSERVE_JOBS__STALE_AFTER_S": "4",  # look for dead runners' jobs every 2 s
    }
    servers = []
    for name in ("a", "b"):
        data = tmp_path / name
        data.mkdir()
        (data / "models").symlink_to(models_dir, target_is_directory=True)
        servers.append(ServerProcess(data, config, env=env))
    try:
        for server in servers:  # side by side, as a deployment's gateways start (one migrates, db.py)
            server.launch()
        for server in servers:
            server.wait_ready(["tiny-text", "slow-video"])
        yield servers[0], servers[1], env
    finally:
        for server in servers:
            server.stop()


def _keys(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "keys", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def _chat(url: str, key: str) -> httpx.Response:
    body = {"model": "tiny-text", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _video(url: str, job_id: str) -> dict:
    return httpx.get(f"{url}/v1/videos/{job_id}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()


def _wait_for(url: str, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while (job := _video(url, job_id))["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job


@pytest.mark.slow
def test_two_gateways_are_one_service(
    gateways: tuple[ServerProcess, ServerProcess, dict[str, str]], pg_url: str
) -> None:
    a, b, env = gateways

    # a key's rpm is enforced across both gateways
    limited = json.loads(_keys(env, "create", "--name", "limited", "--rpm", "4"))["key"]
    assert [_chat(s.url, limited).status_code for s in (a, b, a, b)] == [200] * 4
    for server in (a, b):
        refused = _chat(server.url, limited)
        assert refused.status_code == 429 and "4 requests per minute" in refused.json()["error"]["message"]
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"

    # usage: requests through either gateway all counted
    made = json.loads(_keys(env, "create", "--name", "metered"))
    metered = made["key"]
    sent = [_chat(s.url, metered) for s in (a, b, b, a, b)]
    assert all(r.status_code == 200 for r in sent)
    tokens = sum(r.json()["usage"]["total_tokens"] for r in sent)
    deadline = time.monotonic() + 10
    while True:  # each gateway writes its records in batches (0.1 s here)
        rows = httpx.get(f"{a.url}/v1/usage", headers={"Authorization": f"Bearer {metered}"}, timeout=10).json()
        totals = {r["model"]: r for r in rows["data"]}
        if totals.get("tiny-text", {}).get("requests") == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    row = totals["tiny-text"]
    assert row["requests"] == 5 and row["input_tokens"] + row["output_tokens"] == tokens

    # revoked through one process, refused by both within a second (their caches would keep it a minute)
    revoked = time.monotonic()
    _keys(env, "revoke", made["id"])
    for server in (b, a):
        while (r := _chat(server.url, metered)).status_code != 401:
            assert time.monotonic() - revoked < 1.0 + 0.5, "a revoked key still works"  # + the CLI's exit
            time.sleep(0.02)
        assert r.json()["error"]["code"] == "invalid_api_key"

    # a job submitted on A is polled and downloaded on B
    admin = {"Authorization": f"Bearer {ADMIN}"}
    first = httpx.post(f"{a.url}/v1/videos", json=VIDEO, headers=admin, timeout=10).json()["id"]
    assert _wait_for(b.url, first)["status"] == "completed"
    content = httpx.get(f"{b.url}/v1/videos/{first}/content", headers=admin, timeout=30)
    assert content.status_code == 200 and mp4_info(content.content) == (16, 96, 64, 8.0, "h264")
    assert httpx.get(f"{a.url}/v1/videos/{first}/content", headers=admin, timeout=30).content == content.content

    # the gateway running a job is killed mid-job: the other one takes the job over and completes it
    second = httpx.post(f"{a.url}/v1/videos", json=VIDEO, headers=admin, timeout=10).json()["id"]
    deadline = time.monotonic() + 120
    while not ((job := _video(a.url, second))["status"] == "in_progress" and job["progress"] > 0):
        assert job["status"] in ("queued", "in_progress") and time.monotonic() < deadline, job
        time.sleep(0.05)
    with psycopg.connect(pg_url) as conn:
        worker = conn.execute("SELECT worker_id FROM video_jobs WHERE id = %s", (second,)).fetchone()[0]
    pid = int(worker.split("/")[-2])
    running, other = (a, b) if a.proc and a.proc.pid == pid else (b, a)
    assert running.proc is not None and running.proc.pid == pid
    running.kill9()
    done = _wait_for(other.url, second)
    assert done["status"] == "completed", done
    data = httpx.get(f"{other.url}/v1/videos/{second}/content", headers=admin, timeout=30).content
    assert mp4_info(data) == (16, 96, 64, 8.0, "h264")
    with psycopg.connect(pg_url) as conn:
        attempts, by = conn.execute("SELECT attempts, worker_id FROM video_jobs WHERE id = %s", (second,)).fetchone()
    assert attempts == 2 and by is not None and int(by.split("/")[-2]) == other.proc.pid  # type: ignore[union-attr]
