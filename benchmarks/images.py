"""Image generation on the demo model: images/s for n=1 and n=4, and mmserve's serving overhead.

    python benchmarks/images.py [--requests 8] [--size 512x512] [--threads 1]

Starts `mmserve serve` on the demo catalog in a subprocess and times POST
/v1/images/generations (b64_json PNGs) one request at a time, for n=1 and n=4. It also
loads the very same pipeline directory in this process with diffusers and times direct
pipeline calls with the same prompt, size, steps, guidance and seeds, alternating with the
served requests (so both see the same machine load; only one computes at a time). The
ratio end-to-end / direct is the serving overhead (HTTP, validation, queueing, PNG
encoding, base64, JSON). Then concurrent clients (n=1 each): images/s at concurrency 1
(sequential) and 4, the legs interleaved over ``--rounds``: on a GPU concurrent requests of one
size share a pipeline call (the engine's batching); on a CPU they run in calls side by side
(``parallel_generations``). Writes benchmarks/results/images.json.

With ``--baseline-src`` (another tree's src/, e.g. /work/main/src), a second server runs that
tree on the same data dir, and its requests join the alternation: the two servers' ratios to
the direct call come from the same run.

``--threads`` sets OMP_NUM_THREADS for both sides (default 1: on a shared machine,
oversubscribed OpenMP threads spin and make timings meaningless; 0 leaves torch's default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from _common import mmserve, summarize, write_result

PROMPT = "A sunset over mountains"
STEPS = 4  # demo-image: quality "medium"
GUIDANCE = 5.0  # demo-image's card option


class Direct:
    """The same pipeline directory, loaded in this process with diffusers, called like the engine does."""

    def __init__(self, model_dir: Path, size: str) -> None:
        from diffusers import AutoPipelineForText2Image

        self.pipe = AutoPipelineForText2Image.from_pretrained(str(model_dir), local_files_only=True)
        self.pipe.set_progress_bar_config(disable=True)
        self.w, self.h = (int(v) for v in size.split("x"))
        self._thread = ThreadPoolExecutor(1)

    def __call__(self, n: int, seed: int) -> None:
        """Called in one worker thread, as the engine calls it: glibc serves the main thread from its
        main arena, which here gave back and faulted in again ~8,700 pages per call (122 ms against
        103 ms in a thread, one run), a cost of where the call runs and not of serving."""
        self._thread.submit(self._call, n, seed).result()

    def _call(self, n: int, seed: int) -> None:
        import torch

        with torch.inference_mode():  # as the engine runs it
            out = self.pipe(
                PROMPT,
                height=self.h,
                width=self.w,
                num_inference_steps=STEPS,
                guidance_scale=GUIDANCE,
                num_images_per_prompt=n,
                generator=[torch.Generator("cpu").manual_seed(seed + i) for i in range(n)],
            )
        assert len(out.images) == n


def run_level(urls: dict[str, str], direct: Direct, n: int, size: str, requests: int) -> dict[str, Any]:
    """Alternate one request to each server and one direct call, so that all see the same machine load."""
    body = {"model": "demo-image", "prompt": PROMPT, "n": n, "size": size, "quality": "medium"}
    served: dict[str, list[float]] = {name: [] for name in urls}
    overhead: dict[str, list[float]] = {name: [] for name in urls}
    called: list[float] = []
    with httpx.Client(timeout=600) as client:

        def post(name: str, seed: int) -> None:
            start = time.perf_counter()
            r = client.post(f"{urls[name]}/v1/images/generations", json={**body, "seed": seed})
            r.raise_for_status()
            assert len(r.json()["data"]) == n
            served[name].append(time.perf_counter() - start)
            if "x-mmserve-overhead-ms" in r.headers:
                overhead[name].append(float(r.headers["x-mmserve-overhead-ms"]))

        for name in urls:  # warm-up
            post(name, 0)
        direct(n, 0)
        for name in urls:
            served[name].clear()
            overhead[name].clear()
        for i in range(requests):
            for name in urls:
                post(name, 1000 + i)
            start = time.perf_counter()
            direct(n, 1000 + i)
            called.append(time.perf_counter() - start)
    out: dict[str, Any] = {
        "n": n,
        "requests": requests,
        "direct_pipeline": {"images_per_s": n * len(called) / sum(called), "latency": summarize(called)},
    }
    for name, times in served.items():
        out[name] = {"images_per_s": n * len(times) / sum(times), "latency": summarize(times)}
        if overhead[name]:
            out[name]["overhead_header_ms_p50"] = statistics.median(overhead[name])
        suffix = "" if name == "mmserve" else f"_{name}"
        out[f"end_to_end_over_direct{suffix}"] = sum(times) / sum(called)
        # each request next to the direct call that followed it: the median of those pairs' ratios
        # is steadier on a shared host than the ratio of the sums, which a few slow calls move
        pairs = [t / c for t, c in zip(times, called, strict=True)]
        out[f"end_to_end_over_direct_pairs_p50{suffix}"] = statistics.median(pairs)
    return out


async def run_concurrent(url: str, size: str, concurrency: int, requests: int) -> tuple[int, float]:
    """``requests`` single-image requests from ``concurrency`` clients: (images, seconds)."""
    body = {"model": "demo-image", "prompt": PROMPT, "n": 1, "size": size, "quality": "medium"}
    pending = list(range(requests))
    async with httpx.AsyncClient(timeout=600) as client:

        async def worker() -> None:
            while pending:
                seed = pending.pop()
                r = await client.post(f"{url}/v1/images/generations", json={**body, "seed": seed})
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests, time.perf_counter() - start


def concurrency_legs(urls: dict[str, str], size: str, requests: int, rounds: int) -> dict[str, Any]:
    """Concurrency 1 and 4 on every server, interleaved: each round runs every server's two legs."""
    done: dict[str, dict[int, list[tuple[int, float]]]] = {name: {1: [], 4: []} for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            for c in done[name]:
                done[name][c].append(asyncio.run(run_concurrent(url, size, c, requests)))
    out: dict[str, Any] = {"requests_per_leg": requests, "rounds": rounds}
    for name, legs in done.items():
        rate = {c: sum(n for n, _ in runs) / sum(s for _, s in runs) for c, runs in legs.items()}
        suffix = "" if name == "mmserve" else f"_{name}"
        out[f"images_per_s{suffix}"] = {str(c): r for c, r in rate.items()}
        out[f"concurrency_4_over_sequential{suffix}"] = rate[4] / rate[1]
    if "baseline" in urls:
        out["concurrency_4_over_baseline"] = out["images_per_s"]["4"] / out["images_per_s_baseline"]["4"]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--size", default="512x512")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="rounds of the concurrency legs")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--baseline-src", help="another source tree to compare with (its src/ directory)")
    p.add_argument("--skip-concurrency", action="store_true", help="only the n=1 / n=4 levels")
    args = p.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch is imported, and for the server
        os.environ["MMSERVE_TORCH_THREADS"] = str(args.threads)  # mmserve sets torch's threads itself
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mmserve-bench-"))
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(mmserve(data_dir, wait_for=["demo-image"]))
        urls = {"mmserve": url}
        if args.baseline_src:
            env = {"PYTHONPATH": args.baseline_src}
            urls["baseline"] = stack.enter_context(mmserve(data_dir, wait_for=["demo-image"], env=env))
        direct = Direct(data_dir / "models" / "image", args.size)
        levels = [run_level(urls, direct, n, args.size, args.requests) for n in (1, 4)]
        concurrent = None if args.skip_concurrency else concurrency_legs(urls, args.size, args.requests, args.rounds)
    write_result(
        "images",
        {
            "model": "demo-image",
            "size": args.size,
            "steps": STEPS,
            "guidance_scale": GUIDANCE,
            "omp_threads": args.threads or "torch default",
            "levels": levels,
            "mmserve_images_per_s_n4_over_n1": levels[1]["mmserve"]["images_per_s"]
            / levels[0]["mmserve"]["images_per_s"],
            "concurrent_clients": concurrent,
        },
    )


if __name__ == "__main__":
    main()
