"""Start-up: seconds from `mmserve serve` to a live `/health` and to readiness, on a built data dir.

    python benchmarks/startup.py [--rounds 3] [--baseline-src /work/main/src]

The demo models are built once first (`mmserve demo`); each round then starts the server on that
data dir and polls every 20 ms. Ready: `GET /ready` answers 200 (or, on a tree without /ready,
`/health` shows every dedicated model loaded). With ``--baseline-src``, a second leg runs that
source tree (PYTHONPATH) the same way, legs interleaved, and the result compares them as ratios.
Also the server's CPU seconds (user + system) until ready: on a shared machine they move less than
the wall clock does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _common import free_port, write_result

DEDICATED = ("demo-vlm", "demo-tts", "demo-asr", "demo-image", "demo-video")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def is_ready(url: str) -> bool:
    r = httpx.get(f"{url}/ready", timeout=2)
    if r.status_code != 404:
        return r.status_code == 200
    models = httpx.get(f"{url}/health", timeout=2).json()["models"]
    return all(models.get(m) == "loaded" for m in DEDICATED)


def one_start(data: Path, src: str | None) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "MMSERVE_PROGRESS": "false"}
    if src:
        env["PYTHONPATH"] = src
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "mmserve.cli", "serve", "--port", str(port), "--data-dir", str(data)]
    proc = subprocess.Popen(
        [*cmd, "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    health, health_cpu = None, 0.0
    try:
        while time.perf_counter() - t0 < 300:
            if proc.poll() is not None:
                raise RuntimeError("mmserve exited during start-up")
            try:
                if health is None and httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    health, health_cpu = time.perf_counter() - t0, cpu_s(proc.pid)
                if health is not None and is_ready(url):
                    ready = time.perf_counter() - t0
                    return {
                        "health_s": health,
                        "ready_s": ready,
                        "cpu_to_health_s": health_cpu,
                        "cpu_to_ready_s": cpu_s(proc.pid),
                    }
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise TimeoutError("mmserve did not become ready")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--baseline-src", help="another source tree to compare with (its src/ directory)")
    args = p.parse_args()
    data = Path(tempfile.mkdtemp(prefix="mmserve-start-"))
    subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "demo", "--data-dir", str(data)], check=True, capture_output=True
    )
    one_start(data, None)  # the first start applies the migrations and warms the page cache
    legs: dict[str, list[dict[str, float]]] = {"this": []}
    if args.baseline_src:
        legs["baseline"] = []
    for _ in range(args.rounds):
        for name in legs:  # interleaved
            legs[name].append(one_start(data, args.baseline_src if name == "baseline" else None))
    summary = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"runs": runs}
        for name, runs in legs.items()
    }
    result: dict[str, object] = {"rounds": args.rounds, "legs": summary}
    if "baseline" in summary:
        result["ratio_baseline_over_this"] = {
            k: summary["baseline"][k] / summary["this"][k]
            for k in ("health_s", "ready_s", "cpu_to_health_s", "cpu_to_ready_s")
        }
    write_result("startup", result)


if __name__ == "__main__":
    main()
