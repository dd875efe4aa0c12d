"""Gateway overhead: the same traffic sent to a loopback fake provider directly, through
mmserve (auth + routing + metering on an upstream card), and through LiteLLM's proxy.

    python benchmarks/gateway.py [--requests 600] [--concurrency 16] [--rounds 3] [--litellm PATH]
                                 [--c1-requests 300] [--c1-rounds 10] [--tasks chat,image,speech]

``--baseline <checkout>/src`` (or ``--baseline-src``) runs one more mmserve leg from another tree (e.g. main's), in
every round and task, so that a change is measured against it in one run.

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

Then **every task at concurrency 1** (chat, image generation and speech through ``upstream-chat``,
``upstream-image`` and ``upstream-speech`` cards of the shipped mmserve): the direct and mmserve
legs interleaved in ``--c1-rounds`` rounds, ``--c1-requests`` per leg and task. Images are 64x64
PNGs as base64 (mmserve reads the provider's JSON, checks the file's format and size and writes
its own JSON); speech is raw PCM streamed through (mmserve asks the provider for PCM, meters its
seconds and re-chunks it). Beside the latencies, the CPU time the serving process spent per
request (the provider's for the direct leg, mmserve's for its leg, from /proc): on a shared
machine latency includes waiting for a core, CPU time does not.
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

from _common import cpu_seconds, free_port, mmserve_process, summarize, write_result

HERE = Path(__file__).resolve().parent
BODY = {"messages": [{"role": "user", "content": "one two three four five six seven eight"}], "max_tokens": 8}
# the concurrency-1 part: task -> (path, body), and (mmserve's card, the provider's model)
TASKS: dict[str, tuple[str, dict]] = {
    "chat": ("/chat/completions", BODY),
    "image": ("/images/generations", {"prompt": "a red square", "size": "64x64", "output_format": "png"}),
    "speech": ("/audio/speech", {"input": "one two three four", "voice": "alloy", "response_format": "pcm"}),
}
CARDS = {
    "chat": ("remote", "their-model"),
    "image": ("remote-image", "their-image"),
    "speech": ("remote-tts", "their-tts"),
}


@contextmanager
def process(cmd: list[str], health: str, env: dict[str, str] | None = None, timeout: float = 180) -> Iterator[int]:
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
        yield proc.pid
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


async def one_by_one(legs: dict[str, tuple[str, str, str, int]], task: str, requests: int, rounds: int) -> dict:
    """``task`` at concurrency 1 on every leg (name -> base URL, key, model, the serving process's pid),
    interleaved in ``rounds``."""
    path, body = TASKS[task]
    latencies: dict[str, list[float]] = {name: [] for name in legs}
    errors = dict.fromkeys(legs, 0)
    cpu = dict.fromkeys(legs, 0.0)
    clients = {
        name: httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {key}"})
        for name, (_, key, _, _) in legs.items()
    }
    try:
        for name, (url, _, model, _) in legs.items():  # warm-up: connections, the card's first request
            for _ in range(5):
                r = await clients[name].post(url + path, json={**body, "model": model})
                if r.status_code != 200:
                    raise RuntimeError(f"{task} on {name}: HTTP {r.status_code} {r.text[:200]}")
        per_round = max(1, requests // rounds)
        for _ in range(rounds):
            for name, (url, _, model, pid) in legs.items():
                client, sent = clients[name], {**body, "model": model}
                cpu[name] -= cpu_seconds(pid)
                for _ in range(per_round):
                    start = time.perf_counter()
                    r = await client.post(url + path, json=sent)
                    if r.status_code == 200:
                        latencies[name].append(time.perf_counter() - start)
                    else:
                        errors[name] += 1
                cpu[name] += cpu_seconds(pid)
    finally:
        for client in clients.values():
            await client.aclose()
    out: dict = {
        name: {
            "errors": errors[name],
            "latency": summarize(xs),
            "server_cpu_ms_per_request": cpu[name] * 1000 / max(1, len(xs) + errors[name]),
        }
        for name, xs in latencies.items()
    }
    direct = out["direct"]["latency"]
    for name in legs:
        if name != "direct":
            lat = out[name]["latency"]
            out[name]["added_p50_ms"] = (lat["p50_s"] - direct["p50_s"]) * 1000
            out[name]["added_p99_ms"] = (lat["p99_s"] - direct["p99_s"]) * 1000
            out[name]["p50_ratio_vs_direct"] = lat["p50_s"] / direct["p50_s"]
    return out


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
    p.add_argument("--c1-requests", type=int, default=300, help="per leg and task, at concurrency 1")
    p.add_argument("--c1-rounds", type=int, default=10, help="interleaved rounds of the concurrency-1 legs")
    p.add_argument("--tasks", default="chat,image,speech", help="tasks of the concurrency-1 part ('' : none)")
    p.add_argument(
        "--baseline",
        "--baseline-src",
        dest="baseline",
        type=Path,
        help="another checkout's src/ (e.g. main's): its mmserve runs as one more leg, 'baseline'",
    )
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
        "  - id: remote-image\n    task: image-generation\n    engine: upstream-image\n"
        f"    options: {{base_url: '{provider_url}', model: their-image, api_key_env: GW_PROVIDER_KEY}}\n"
        "    capabilities: {sizes: ['64x64']}\n    pricing: {per_image: 0.04}\n"
        "    deployment: {mode: dedicated, max_concurrency: 64}\n"
        "  - id: remote-tts\n    task: speech\n    engine: upstream-speech\n"
        f"    options: {{base_url: '{provider_url}', model: their-tts, api_key_env: GW_PROVIDER_KEY}}\n"
        "    pricing: {per_audio_second: 0.0002}\n"
        "    deployment: {mode: dedicated, max_concurrency: 64}\n"
    )
    variants = {"mmserve": "true", "mmserve_batch_only": "false"}  # MMSERVE_USAGE_JOURNAL
    if args.baseline:
        variants["baseline"] = "true"
    dirs = {name: root / name for name in variants}
    keys = {name: create_key(d) for name, d in dirs.items()}
    per_round = max(1, args.requests // args.rounds)
    rounds: dict[str, list[dict]] = {}
    c1: dict[str, dict] = {}
    pids: dict[str, int] = {}
    with ExitStack() as stack:
        pids["direct"] = stack.enter_context(
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
            if name == "baseline":
                env["PYTHONPATH"] = str(args.baseline.resolve())
            args_ = ("--config", str(catalog), "--log-level", "warning")
            wait = [card for card, _ in CARDS.values()]
            url, pids[name] = stack.enter_context(mmserve_process(dirs[name], *args_, wait_for=wait, env=env))
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
        for task in filter(None, args.tasks.split(",")):
            card, theirs = CARDS[task]
            both = {
                "direct": (provider_url, "sk-upstream", theirs, pids["direct"]),
                "mmserve": (targets["mmserve"][0], keys["mmserve"], card, pids["mmserve"]),
            }
            if "baseline" in targets:
                both["baseline"] = (targets["baseline"][0], keys["baseline"], card, pids["baseline"])
            c1[task] = asyncio.run(one_by_one(both, task, args.c1_requests, args.c1_rounds))
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
    if "baseline" in legs:
        compare["mmserve_over_baseline"] = {
            "p50_ratio": legs["mmserve"]["latency"]["p50_s"] / legs["baseline"]["latency"]["p50_s"],
            "throughput_ratio": legs["mmserve"]["requests_per_s"] / legs["baseline"]["requests_per_s"],
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
            "concurrency_1": {"requests_per_leg": args.c1_requests, "rounds": args.c1_rounds, "tasks": c1},
        },
    )


if __name__ == "__main__":
    main()
