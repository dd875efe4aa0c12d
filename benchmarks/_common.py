"""Shared by the benchmark scripts: start `mmserve serve` as a subprocess, summarise latencies."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mmserve(
    data_dir: Path,
    *args: str,
    wait_for: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> Iterator[str]:
    """Run `mmserve serve` on a free port until the block ends; yields its base URL."""
    with mmserve_process(data_dir, *args, wait_for=wait_for, env=env, timeout=timeout) as (url, _):
        yield url


@contextmanager
def mmserve_process(
    data_dir: Path,
    *args: str,
    wait_for: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> Iterator[tuple[str, int]]:
    """Like :func:`mmserve`, yielding the base URL and the server's process id."""
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmserve.cli", "serve", "--port", str(port), "--data-dir", str(data_dir), *args],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("mmserve exited during start-up")
            try:
                r = httpx.get(f"{url}/ready", timeout=2)  # "starting" while the models load
                if r.status_code == 404:  # a tree from before /ready: it listened once loaded
                    r = httpx.get(f"{url}/health", timeout=2)
                ready = r.json()
                if ready.get("status") != "starting" and all(
                    ready["models"].get(m) == "loaded" for m in wait_for or []
                ):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError(f"mmserve did not load {wait_for} within {timeout:.0f} s")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def rss_bytes(pid: int) -> int:
    """The resident memory of a process (Linux: /proc/<pid>/status VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def rss_tree_bytes(pid: int) -> int:
    """The resident memory of a process and its live descendants (a server and its worker processes)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += rss_bytes(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live descendants so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def summarize(latencies: list[float]) -> dict[str, float]:
    xs = sorted(latencies)
    if not xs:
        return {}

    def pct(p: float) -> float:
        return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]

    return {
        "n": len(xs),
        "mean_s": statistics.fmean(xs),
        "p50_s": pct(50),
        "p90_s": pct(90),
        "p99_s": pct(99),
        "max_s": xs[-1],
    }


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **result}, indent=2))
    print(json.dumps(result, indent=2))
    print(f"written to {path}")
    return path
