"""Chat throughput, time to first token and memory under load, on the demo catalog's chat models.

    python benchmarks/chat.py [--models demo-vlm demo-tools] [--concurrency 1 4 16]
                              [--requests 48] [--rounds 2] [--max-tokens 32] [--spread 0.5]
                              [--baseline-src /work/main/src]

Starts `mmserve serve` on the demo catalog in a subprocess and streams chat requests
(demo-vlm: a JPEG and a question; demo-tools: text) at each concurrency. The legs are
interleaved (each round runs every model at every concurrency) so that a slower or busier
moment of a shared machine falls on all of them alike; the figures of a leg are pooled over
the rounds. Per leg: requests/s, TTFT and latency p50/p99, and the server's resident memory
(the most seen, sampled every 50 ms), and the server's own TTFT (the mean of its
``mmserve_time_to_first_token_seconds`` over the leg: arrival to first content, without the load
generator that shares the cores). Ratios at concurrency c over concurrency 1 compare
within the run; benchmarks/results/chat.json has all of it. With ``--baseline-src`` a second
server runs that source tree (e.g. main's) and its legs are interleaved with this tree's in the
same rounds; ``this_over_baseline`` compares the two. With ``--worker`` a second server of this
tree runs the same catalog with the measured models in worker processes (``deployment.process:
true``), interleaved the same way; ``worker_over_this`` compares it with the in-process server.
CPU and memory count a server's worker processes too.

Every answer is ``--max-tokens`` long by default, so the clients of a closed loop stay in step:
at concurrency 16 all sixteen answers end at the same decode step and sixteen new requests
arrive at once, every time, and the time to first token measures that burst. ``--spread s``
draws each request's length from [max·(1-s), max·(1+s)] (seeded, the same draws for every
tree), so that arrivals spread out as they do in real traffic (vLLM's benchmark_serving draws
lengths too); tokens/s then counts the tokens asked.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import random
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from _common import cpu_seconds, mmserve_process, rss_tree_bytes, summarize, write_result


def _image_uri() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (40, 90, 160)).save(buf, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _body(model: str, max_tokens: int) -> dict[str, Any]:
    if model == "demo-vlm":
        content: Any = [
            {"type": "text", "text": "What is shown in this image?"},
            {"type": "image_url", "image_url": {"url": _image_uri()}},
        ]
    else:
        content = "Tell me about the weather in Paris and what to wear there."
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "ignore_eos": True,  # every answer max_tokens long: the legs compare like with like
        "stream": True,
    }


def lengths(max_tokens: int, spread: float, requests: int, seed: int) -> list[int]:
    """Each request's answer length: ``max_tokens``, or drawn from [max·(1-spread), max·(1+spread)]."""
    rng = random.Random(seed)
    low, high = max(1, round(max_tokens * (1 - spread))), max(1, round(max_tokens * (1 + spread)))
    return [rng.randint(low, high) for _ in range(requests)]


async def server_ttft(client: httpx.AsyncClient, url: str, model: str) -> tuple[float, float]:
    """The server's own time-to-first-token histogram for ``model``: (sum of seconds, count) so far.

    It runs from the request's arrival to its first content leaving the server, so it leaves out
    the load generator, which shares the machine's cores (and at concurrency 16 its run queue).
    """
    r = await client.get(f"{url}/metrics")
    found = {"_sum": 0.0, "_count": 0.0}
    for family in text_string_to_metric_families(r.text):
        if family.name == "mmserve_time_to_first_token_seconds":
            for sample in family.samples:
                suffix = sample.name.removeprefix(family.name)
                if suffix in found and sample.labels.get("model") == model:
                    found[suffix] = sample.value
    return found["_sum"], found["_count"]


async def run_leg(url: str, pid: int, model: str, concurrency: int, asked: list[int]) -> dict:
    body = _body(model, asked[0])
    latencies: list[float] = []
    ttfts: list[float] = []
    errors = 0
    rss: list[int] = []
    pending = list(asked)

    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            nonlocal errors
            while pending:
                sent = {**body, "max_tokens": pending.pop()}
                start = time.perf_counter()
                first = None
                async with client.stream("POST", f"{url}/v1/chat/completions", json=sent) as r:
                    async for line in r.aiter_lines():
                        if first is None and '"content": "' in line and '"content": ""' not in line:
                            first = time.perf_counter() - start
                    ok = r.status_code == 200
                if ok and first is not None:
                    latencies.append(time.perf_counter() - start)
                    ttfts.append(first)
                else:
                    errors += 1

        async def sample(done: asyncio.Event) -> None:
            while not done.is_set():
                rss.append(rss_tree_bytes(pid))
                await asyncio.sleep(0.05)

        done = asyncio.Event()
        ttft0 = await server_ttft(client, url, model)
        sampler = asyncio.create_task(sample(done))
        t0, cpu0 = time.perf_counter(), cpu_seconds(pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        done.set()
        await sampler
        ttft1 = await server_ttft(client, url, model)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "latencies": latencies,
        "ttfts": ttfts,
        "errors": errors,
        "rss_max_bytes": max(rss, default=rss_tree_bytes(pid)),
        "tokens_asked": sum(asked),
        "server_ttft": (ttft1[0] - ttft0[0], ttft1[1] - ttft0[1]),
    }


def _pool(runs: list[dict], concurrency: int) -> dict:
    latencies = [x for r in runs for x in r["latencies"]]
    wall = sum(r["wall_s"] for r in runs)
    return {
        "concurrency": concurrency,
        "requests": len(latencies) + sum(r["errors"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "requests_per_s": len(latencies) / wall,
        "output_tokens_per_s": sum(r["tokens_asked"] for r in runs) / wall,
        # the server's CPU time (all its threads) per request: steadier than rates on a shared machine
        "server_cpu_ms_per_request": 1000 * sum(r["cpu_s"] for r in runs) / max(1, len(latencies)),
        "ttft": summarize([x for r in runs for x in r["ttfts"]]),
        # the server's own TTFT (its histogram's sum / count over the leg): only a mean
        "server_ttft_mean_s": sum(r["server_ttft"][0] for r in runs) / max(1.0, sum(r["server_ttft"][1] for r in runs)),
        "latency": summarize(latencies),
        "rss_max_mb": max(r["rss_max_bytes"] for r in runs) / 2**20,
    }


def _summary(runs: dict[tuple[str, int], list[dict]], models: list[str], levels: list[int]) -> dict:
    results: dict[str, Any] = {}
    for model in models:
        pooled = [_pool(runs[model, c], c) for c in levels]
        base = pooled[0]
        results[model] = {
            "levels": pooled,
            "ratios_vs_concurrency_1": {
                str(lv["concurrency"]): {
                    "requests_per_s": lv["requests_per_s"] / base["requests_per_s"],
                    "ttft_p50": lv["ttft"]["p50_s"] / base["ttft"]["p50_s"],
                    "ttft_mean": lv["ttft"]["mean_s"] / base["ttft"]["mean_s"],
                    "server_ttft_mean": lv["server_ttft_mean_s"] / max(1e-9, base["server_ttft_mean_s"]),
                    "rss_max": lv["rss_max_mb"] / base["rss_max_mb"],
                }
                for lv in pooled
            },
        }
    return results


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["demo-vlm", "demo-tools"])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--requests", type=int, default=48, help="per leg and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--spread", type=float, default=0.0, help="answer lengths drawn within max-tokens x (1 +- spread)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--baseline-src", type=Path, default=None, help="another checkout's src/ (e.g. /work/main/src)")
    p.add_argument("--worker", action="store_true", help="also this tree with the models in worker processes")
    args = p.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mmserve-bench-"))
    trees: dict[str, tuple[dict[str, str] | None, list[str]]] = {"this": (None, [])}
    if args.baseline_src:
        trees["baseline"] = ({"PYTHONPATH": str(args.baseline_src.resolve())}, [])
    if args.worker:
        trees["worker"] = (None, ["--config", str(_worker_catalog(data_dir, args.models))])
    runs = {t: {(m, c): [] for m in args.models for c in args.concurrency} for t in trees}
    rss_idle: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        servers = {
            tree: stack.enter_context(mmserve_process(data_dir / tree, *cli, wait_for=["demo-vlm"], env=env))
            for tree, (env, cli) in trees.items()
        }
        for tree, (url, pid) in servers.items():
            for model in args.models:  # warm-up: loads serverless models, first-call costs
                await run_leg(url, pid, model, 2, [args.max_tokens] * 4)
            rss_idle[tree] = rss_tree_bytes(pid) / 2**20
        for r in range(args.rounds):
            for model in args.models:
                for c in args.concurrency:
                    asked = lengths(args.max_tokens, args.spread, args.requests, seed=r)
                    for tree, (url, pid) in servers.items():  # the trees' legs back to back
                        leg = await run_leg(url, pid, model, c, asked)
                        runs[tree][model, c].append(leg)
    summary = {t: _summary(runs[t], args.models, args.concurrency) for t in trees}
    result: dict[str, Any] = {
        "max_tokens": args.max_tokens,
        "spread": args.spread,
        "rounds": args.rounds,
        "requests_per_leg": args.requests,
        "rss_after_warmup_mb": rss_idle["this"],
        "models": summary["this"],
    }
    if "baseline" in summary:
        result["baseline_src"] = str(args.baseline_src)
        result["baseline"] = {"rss_after_warmup_mb": rss_idle["baseline"], "models": summary["baseline"]}
        result["this_over_baseline"] = _compare(summary["this"], summary["baseline"], args.models)
    if "worker" in summary:
        result["worker"] = {"rss_after_warmup_mb": rss_idle["worker"], "models": summary["worker"]}
        result["worker_over_this"] = _compare(summary["worker"], summary["this"], args.models)
    write_result("chat", result)


def _compare(mine: dict, theirs: dict, models: list[str]) -> dict:
    return {
        model: {
            str(a["concurrency"]): {
                "requests_per_s": a["requests_per_s"] / b["requests_per_s"],
                "ttft_p50": a["ttft"]["p50_s"] / b["ttft"]["p50_s"],
                "server_cpu_per_request": a["server_cpu_ms_per_request"] / b["server_cpu_ms_per_request"],
            }
            for a, b in zip(mine[model]["levels"], theirs[model]["levels"], strict=True)
        }
        for model in models
    }


def _worker_catalog(data_dir: Path, models: list[str]) -> Path:
    """The demo catalog with ``models`` in worker processes (deployment.process: true)."""
    demo = yaml.safe_load(resources.files("mmserve.catalog").joinpath("demo.yaml").read_text())
    for card in demo["models"]:
        if card["id"] in models:
            card.setdefault("deployment", {})["process"] = True
    path = data_dir / "worker-catalog.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(demo))
    return path


if __name__ == "__main__":
    asyncio.run(main())
