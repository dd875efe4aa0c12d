"""Video jobs: the overhead a job adds around the engine, and content download throughput.

    python benchmarks/video.py [--jobs 12] [--downloads 40]

Starts `mmserve serve` in a subprocess on a catalog with the tiny Wan pipeline and measures:

- **Job overhead**: submit-to-completed time minus the engine's own time, per job. The
  engine time (denoising + VAE decode) and the encode time are what the runner recorded in
  the job's row (``timings``); submit-to-completed is taken on the server (``completed_at -
  created_at``, no polling error) and on the client (submit until a 10 ms poll sees
  ``completed``). Sequential jobs (an idle queue) and a burst of jobs submitted at once.
- **Download throughput**: MB/s of ``GET /v1/videos/{id}/content`` (whole file and 1 MiB
  Range requests) and of the signed ``/v1/artifacts`` link, with 1 and 4 concurrent clients.

Writes benchmarks/results/video.json. Compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from _common import mmserve, summarize, write_result

CATALOG = {
    "models": [
        {
            "id": "bench-video",
            "task": "video-generation",
            "engine": "diffusers-video",
            "source": "demo:video",
            "options": {"steps": 2, "guidance_scale": 1.0},
            "capabilities": {"sizes": ["64x48", "256x256"], "fps": [8, 24], "durations": [1, 12]},
            "deployment": {"mode": "dedicated", "max_concurrency": 1, "max_queue": 256},
        }
    ]
}
SMALL = {"model": "bench-video", "prompt": "a red kite over a beach", "size": "64x48", "seconds": "1", "fps": 8}
# the largest clip the demo card makes (288 frames): a bigger file for the download figures
LARGE = {"model": "bench-video", "prompt": "a red kite over a beach", "size": "256x256", "seconds": "12", "fps": 24}


async def submit_and_wait(client: httpx.AsyncClient, body: dict[str, Any], poll_s: float) -> tuple[str, float]:
    """Submit and poll. Polls cost the server CPU that the engine shares, so they are spaced out:
    the overhead figures use the server's own timestamps; the client's carry up to ``poll_s``."""
    start = time.perf_counter()
    vid = (await client.post("/v1/videos", json=body)).json()["id"]
    while True:
        status = (await client.get(f"/v1/videos/{vid}")).json()["status"]
        if status in ("completed", "failed"):
            assert status == "completed", status
            return vid, time.perf_counter() - start
        await asyncio.sleep(poll_s)


def server_timings(db: Path, ids: list[str]) -> dict[str, dict[str, float]]:
    with sqlite3.connect(db) as conn:
        q = f"SELECT id, created_at, completed_at, timings FROM video_jobs WHERE id IN ({','.join('?' * len(ids))})"
        rows = conn.execute(q, ids).fetchall()
    return {r[0]: {"server_total_s": r[2] - r[1], **json.loads(r[3])} for r in rows}


def overheads(client_s: dict[str, float], server: dict[str, dict[str, float]]) -> dict[str, Any]:
    per = [
        {
            "client_total_s": client_s[i],
            "server_total_s": t["server_total_s"],
            "engine_s": t["engine_s"],
            "encode_s": t["encode_s"],
            "overhead_server_s": t["server_total_s"] - t["engine_s"],
            "overhead_client_s": client_s[i] - t["engine_s"],
            "overhead_excl_encode_s": t["server_total_s"] - t["engine_s"] - t["encode_s"],
        }
        for i, t in server.items()
    ]
    keys = per[0].keys() if per else []
    return {k: summarize([p[k] for p in per]) for k in keys}


async def job_overhead(url: str, db: Path, n: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        await submit_and_wait(client, SMALL, 0.1)  # warm-up: first-call kernels
        sequential: dict[str, float] = {}
        for _ in range(n):
            vid, took = await submit_and_wait(client, SMALL, 0.02)
            sequential[vid] = took
        t0 = time.perf_counter()
        burst = dict(await asyncio.gather(*(submit_and_wait(client, SMALL, 0.25) for _ in range(n))))
        burst_wall = time.perf_counter() - t0
    seq_t, burst_t = server_timings(db, list(sequential)), server_timings(db, list(burst))
    engine_sum = sum(t["engine_s"] for t in burst_t.values())
    return {
        "request": SMALL,
        "sequential": overheads(sequential, seq_t),
        "burst": {
            "jobs": n,
            "wall_s": burst_wall,
            "engine_s_sum": engine_sum,
            "engine_share_of_wall": engine_sum / burst_wall,
            "per_job": overheads(burst, burst_t),
        },
    }


async def downloads(url: str, video_id: str, n: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        signed = (await client.get(f"/v1/video/generations/{video_id}")).json()["output"]["url"]
        size = len((await client.get(f"/v1/videos/{video_id}/content")).content)

        async def level(path: str, concurrency: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
            got: list[int] = []
            times: list[float] = []

            async def one() -> None:
                start = time.perf_counter()
                r = await client.get(path, headers=headers)
                assert r.status_code in (200, 206), r.status_code
                times.append(time.perf_counter() - start)
                got.append(len(r.content))

            t0 = time.perf_counter()
            for _ in range(n // concurrency):
                await asyncio.gather(*(one() for _ in range(concurrency)))
            wall = time.perf_counter() - t0
            return {
                "concurrency": concurrency,
                "requests": len(got),
                "mb_per_s": sum(got) / wall / 1e6,
                **summarize(times),
            }

        content = f"/v1/videos/{video_id}/content"
        chunk = {"Range": f"bytes=0-{min(size, 1 << 20) - 1}"}
        return {
            "file_bytes": size,
            "content": [await level(content, c) for c in (1, 4)],
            "content_range_1mib": [await level(content, c, chunk) for c in (1, 4)],
            "signed_artifact_url": [await level(signed.removeprefix(url), c) for c in (1, 4)],
        }


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=12)
    p.add_argument("--downloads", type=int, default=40)
    p.add_argument("--data-dir", type=Path, default=None)
    args = p.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mmserve-bench-video-"))
    catalog = data_dir / "catalog.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    catalog.write_text(yaml.safe_dump(CATALOG))
    with mmserve(data_dir, "--config", str(catalog), wait_for=["bench-video"]) as url:
        jobs = await job_overhead(url, data_dir / "mmserve.db", args.jobs)
        async with httpx.AsyncClient(base_url=url, timeout=600) as client:
            large_id, large_s = await submit_and_wait(client, LARGE, 0.5)
        large = server_timings(data_dir / "mmserve.db", [large_id])[large_id]
        dl = await downloads(url, large_id, args.downloads)
    seq = jobs["sequential"]
    write_result(
        "video",
        {
            "model": "bench-video (tiny Wan, 2 steps)",
            "jobs": jobs,
            "large_clip": {"request": LARGE, "client_total_s": large_s, **large},
            "downloads": dl,
            "summary": {
                "sequential_overhead_p50_s": seq["overhead_server_s"]["p50_s"],
                "sequential_overhead_excl_encode_p50_s": seq["overhead_excl_encode_s"]["p50_s"],
                "sequential_engine_p50_s": seq["engine_s"]["p50_s"],
                "overhead_over_engine_p50": seq["overhead_server_s"]["p50_s"] / seq["engine_s"]["p50_s"],
                "download_file_bytes": dl["file_bytes"],
                "download_p50_s_c1": dl["content"][0]["p50_s"],
                "download_mb_per_s_c1": dl["content"][0]["mb_per_s"],
                "download_mb_per_s_c4": dl["content"][1]["mb_per_s"],
                "large_clip_engine_over_total": large["engine_s"] / large["server_total_s"],
            },
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
