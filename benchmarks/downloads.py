"""File downloads: MB/s of a 100 MB artifact through `GET /v1/artifacts/{id}` (the route video
content shares: api/artifacts/files.py), whole (1 and 4 clients) and as 8 MiB Range requests
(one client, one after another), and whether the event loop stayed free meanwhile (a `/health`
probe's latency during downloads).

    python benchmarks/downloads.py [--mb 100] [--rounds 3] [--repeat 4] [--baseline-src /work/main/src]

What is timed is the transfers, as curl times them (``time_total``: connect to last byte), not
the start of curl's process (~7 ms here, a tenth of a 100 MB transfer at 1.5 GB/s): each client
is one curl downloading ``--repeat`` times, and a leg's MB/s is its bytes over the longest
client's summed transfer time. The first download after the server starts is reported apart
(``first_download_mb_per_s``): it also pays the route's one-time costs (imports, the first
worker thread).

No model is involved: the artifact is written into the server's data dir and its link signed
with the server's key. With ``--baseline-src`` a second server runs that source tree; the legs
alternate in rounds. Writes benchmarks/results/downloads.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _common import mmserve, write_result
from mmserve.settings import Settings
from mmserve.storage.artifacts import ArtifactMeta, ArtifactStore
from mmserve.storage.signing import UrlSigner

CATALOG = "models:\n  - {id: tts, task: speech, engine: espeak-ng}\n"


def curl(url: str, clients: int, ranges: list[str] | None = None, repeat: int = 1) -> float:
    """MB/s of ``clients`` curls side by side, each downloading ``url`` ``repeat`` times (or each
    of ``ranges`` once, one after another) on one connection, bytes to /dev/null; timed by curl.

    curl, not an httpx client: a Python client reading 100 MB caps the figure itself.
    """
    jobs = [ranges or [""] * repeat for _ in range(clients)]
    configs = [
        "\nnext\n".join(
            f'url = "{url}"\noutput = "/dev/null"\nwrite-out = "%{{size_download}} %{{time_total}}\\n"'
            + (f'\nrange = "{r}"' if r else "")
            for r in job
        )
        for job in jobs
    ]
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / f"client{i}.curlrc" for i in range(len(jobs))]
        for file, config in zip(files, configs, strict=True):
            file.write_text(config)
        procs = [subprocess.Popen(["curl", "-sf", "--config", str(f)], stdout=subprocess.PIPE) for f in files]
        outs = [proc.communicate()[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError("a curl client failed")
    got, longest = 0, 0.0
    for out in outs:
        transfers = [line.split() for line in out.decode().splitlines()]
        got += sum(int(size) for size, _ in transfers)
        longest = max(longest, sum(float(t) for _, t in transfers))
    return got / longest / 1e6


async def probe_loop(base: str, stop: asyncio.Event) -> list[float]:
    """/health latencies while downloads run: late answers mean a blocked event loop."""
    probes: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            t = time.perf_counter()
            await client.get(f"{base}/health")
            probes.append(time.perf_counter() - t)
            await asyncio.sleep(0.01)
    return probes


async def measure(url: str, size: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {"first_download_mb_per_s": curl(url, 1)}
    out |= {f"whole_mb_per_s_c{n}": curl(url, n, repeat=repeat) for n in (1, 4)}
    part = 8 << 20
    out["ranges_mb_per_s"] = curl(url, 1, [f"{o}-{min(o + part, size) - 1}" for o in range(0, size, part)])
    stop = asyncio.Event()
    probing = asyncio.create_task(probe_loop(url.split("/v1/")[0], stop))
    await asyncio.to_thread(curl, url, 4)
    stop.set()
    probes = await probing
    out["health_during_downloads_p50_ms"] = statistics.median(probes) * 1000
    out["health_during_downloads_max_ms"] = max(probes) * 1000
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeat", type=int, default=4, help="downloads per client (whole file)")
    p.add_argument("--baseline-src")
    args = p.parse_args()
    size = args.mb * 1_000_000
    data = Path(tempfile.mkdtemp(prefix="mmserve-dl-"))
    catalog = data / "catalog.yaml"
    catalog.write_text(CATALOG)
    env = {"MMSERVE_SECRET_KEY": "bench-secret"}
    settings = Settings(data_dir=data, secret_key="bench-secret")
    art = ArtifactStore(data / "artifacts", default_ttl_s=None).put_bytes(
        os.urandom(size), ArtifactMeta(content_type="video/mp4", filename="big.mp4", ttl_s=0)
    )
    path = f"/v1/artifacts/{art.id}?{UrlSigner.from_settings(settings).query(art.id, 3600)}"
    legs = {"this": None, **({"baseline": args.baseline_src} if args.baseline_src else {})}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in legs}
    for _ in range(args.rounds):
        for name, src in legs.items():
            leg_env = {**env, **({"PYTHONPATH": src} if src else {})}
            with mmserve(data, "--config", str(catalog), "--log-level", "warning", env=leg_env) as url:
                runs[name].append(asyncio.run(measure(url + path, size, args.repeat)))
    summary = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    result: dict[str, Any] = {
        "file_bytes": size,
        "rounds": args.rounds,
        "repeat": args.repeat,
        "legs": summary,
        "runs": runs,
    }
    if "baseline" in summary:
        result["ratio_this_over_baseline"] = {
            k: summary["this"][k] / summary["baseline"][k] for k in summary["this"] if "mb_per_s" in k
        }
    write_result("downloads", result)


if __name__ == "__main__":
    main()
