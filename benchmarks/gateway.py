"""Gateway overhead: the same chat traffic sent to a loopback fake provider directly, through
mmserve (auth + routing + metering on an upstream card), and through LiteLLM's proxy.

    python benchmarks/gateway.py [--requests 600] [--concurrency 16] [--rounds 3] [--litellm PATH]

LiteLLM runs from its own virtualenv (``python -m venv /opt/litellm && /opt/litellm/bin/pip
install 'litellm[proxy]'``) given by ``--litellm`` (default: `litellm` on PATH); without it that
leg is skipped. mmserve runs twice, as shipped (every usage record written to the write-ahead
journal before its response ends) and with ``MMSERVE_USAGE_JOURNAL=false`` (batches only, the
behaviour before the journal), to measure what durability costs the request path. All legs run
in one invocation, against one provider process, interleaved: each leg's requests are split
into ``--rounds`` rounds and every round runs every leg (in a rotating order), so that a
machine whose load drifts affects them alike. The result is written to
benchmarks/results/gateway.json with added latency = leg p50/p99 minus the direct p50/p99,
throughput ratios, and the journal's cost as ratios of the two mmserve legs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from _common import free_port, mmserve, summarize, write_result

HERE = Path(__file__).resolve().parent
BODY = {"messages": [{"role": "user", "content": "one two three four five six seven eight"}], "max_tokens": 8}


@contextmanager
def process(cmd: list[str], health: str, env: dict[str, str] | None = None, timeout: float = 180) -> Iterator[None]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited during start-up")
            try:
                if httpx.get(health, timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise TimeoutError(f"{cmd} did not start")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def load(url: str, key: str, model: str, requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    overheads: list[float] = []  # x-mmserve-overhead-ms: mmserve's own time (none on the other legs)
    errors = 0
    remaining = requests
    headers = {"Authorization": f"Bearer {key}"}
    body = {**BODY, "model": model}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                r = await client.post(f"{url}/chat/completions", json=body, headers=headers)
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                    if "x-mmserve-overhead-ms" in r.headers:
                        overheads.append(float(r.headers["x-mmserve-overhead-ms"]) / 1000)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(min(concurrency, 4))))  # warm-up connections
        latencies.clear()
        overheads.clear()
        remaining = requests
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"latencies": latencies, "overheads": overheads, "errors": errors, "wall_s": wall}


def merge(rounds: list[dict]) -> dict:
    latencies = [x for r in rounds for x in r["latencies"]]
    overheads = [x for r in rounds for x in r["overheads"]]
    wall = sum(r["wall_s"] for r in rounds)
    return {
        "requests": len(latencies) + sum(r["errors"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "latency": summarize(latencies),
        **({"mmserve_overhead": summarize(overheads)} if overheads else {}),
    }


def create_key(data: Path) -> str:
    created = subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "keys", "--data-dir", str(data), "create", "--name", "bench"],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(created.stdout)["key"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=600, help="per leg, over all rounds")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--litellm", default=shutil.which("litellm"))
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmserve-gw-"))
    provider_port = free_port()
    provider_url = f"http://127.0.0.1:{provider_port}/v1"
    catalog = root / "catalog.yaml"
    catalog.write_text(
        "models:\n  - id: remote\n    task: chat\n    engine: upstream-chat\n"
        f"    options: {{base_url: '{provider_url}', model: their-model, api_key_env: GW_PROVIDER_KEY}}\n"
        "    pricing: {input_per_1m_tokens: 1.0, output_per_1m_tokens: 2.0}\n"
        "    deployment: {mode: dedicated, max_concurrency: 256, max_queue: 1024}\n"
    )
    variants = {"mmserve": "true", "mmserve_batch_only": "false"}  # MMSERVE_USAGE_JOURNAL
    dirs = {name: root / name for name in variants}
    keys = {name: create_key(d) for name, d in dirs.items()}
    per_round = max(1, args.requests // args.rounds)
    rounds: dict[str, list[dict]] = {}
    with ExitStack() as stack:
        stack.enter_context(
            process(
                [sys.executable, str(HERE / "fake_provider_main.py"), "--port", str(provider_port)],
                f"{provider_url}/models",
            )
        )
        targets = {"direct": (provider_url, "sk-upstream", "their-model")}
        for name, journal in variants.items():
            env = {
                "GW_PROVIDER_KEY": "sk-upstream",
                "MMSERVE_AUTH": "true",
                "MMSERVE_LOG_LEVEL": "warning",
                "MMSERVE_USAGE_JOURNAL": journal,
            }
            args_ = ("--config", str(catalog), "--log-level", "warning")
            url = stack.enter_context(mmserve(dirs[name], *args_, wait_for=["remote"], env=env))
            targets[name] = (url + "/v1", keys[name], "remote")
        if args.litellm:
            port = free_port()
            cfg = root / "litellm.yaml"
            cfg.write_text(
                "model_list:\n  - model_name: remote\n    litellm_params:\n      model: openai/their-model\n"
                f"      api_base: {provider_url}\n      api_key: sk-upstream\n"
                "general_settings:\n  master_key: sk-master\n"
            )
            stack.enter_context(
                process(
                    [args.litellm, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
                    f"http://127.0.0.1:{port}/health/liveliness",
                )
            )
            targets["litellm"] = (f"http://127.0.0.1:{port}/v1", "sk-master", "remote")
        names = list(targets)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # a rotating order
                url, key, model = targets[name]
                rounds.setdefault(name, []).append(asyncio.run(load(url, key, model, per_round, args.concurrency)))
    legs = {name: merge(rs) for name, rs in rounds.items()}
    direct = legs["direct"]
    compare: dict[str, dict[str, float]] = {
        name: {
            "added_p50_ms": (leg["latency"]["p50_s"] - direct["latency"]["p50_s"]) * 1000,
            "added_p99_ms": (leg["latency"]["p99_s"] - direct["latency"]["p99_s"]) * 1000,
            "throughput_ratio_vs_direct": leg["requests_per_s"] / direct["requests_per_s"],
        }
        for name, leg in legs.items()
        if name != "direct"
    }
    journal, batch = legs["mmserve"], legs["mmserve_batch_only"]
    compare["usage_journal_cost"] = {
        "p50_ratio": journal["latency"]["p50_s"] / batch["latency"]["p50_s"],
        "p99_ratio": journal["latency"]["p99_s"] / batch["latency"]["p99_s"],
        "throughput_ratio": journal["requests_per_s"] / batch["requests_per_s"],
    }
    if "litellm" in legs:
        compare["mmserve_over_litellm_throughput"] = {
            "ratio": legs["mmserve"]["requests_per_s"] / legs["litellm"]["requests_per_s"]
        }
    write_result(
        "gateway",
        {
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "legs": legs,
            "compare": compare,
            "mmserve_path": "bearer auth + routing + usage metering (journal + SQLite batches) + metrics",
            "mmserve_batch_only_path": "the same with MMSERVE_USAGE_JOURNAL=false (SQLite batches only)",
            "litellm_path": "master-key auth + routing, no spend database",
        },
    )


if __name__ == "__main__":
    main()
