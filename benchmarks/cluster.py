"""Scale-out costs, measured in one run with legs interleaved:

1. a chat request through a Ray-placed replica vs an in-process one (one `mmserve serve` each,
   same tiny model): added p50 at concurrency 1 and the throughput ratio at concurrency 16;
2. two gateways vs one (requests/s at concurrency 16, round robin over the two): in front of
   the same Ray replica (the two gateways share it), and each with its in-process replica;
3. the control plane's per-request cost with shared state: an authenticated, rate-limited
   request (GET /v1/models: no model work) on SQLite + in-memory limits vs PostgreSQL + Redis.

    python benchmarks/cluster.py [--requests 200] [--rounds 3] [--baseline-src /work/main/src] [--only-ray]

Starts its own PostgreSQL, Redis and single-node Ray cluster on loopback (tests/helpers) and
writes benchmarks/results/cluster.json.

With ``--baseline-src`` (another tree's src/), a second Ray cluster and gateway run that tree
(the gateway and the Ray workers both import it: PYTHONPATH), and its Ray legs join each round,
so that the two trees' added latency comes from the same run. ``--only-ray`` skips legs 2 and 3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from _common import mmserve, summarize, write_result

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.postgres import PostgresServer  # noqa: E402
from tests.helpers.ray_cluster import RayCluster  # noqa: E402
from tests.helpers.redis_server import RedisServer  # noqa: E402

CATALOG = """
models:
  - id: tiny-text
    task: chat
    engine: transformers-chat
    source: "demo:text-lm"
    deployment: {mode: dedicated, max_concurrency: 16, num_cpus: 0}
"""
CHAT = {"model": "tiny-text", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "seed": 1}
ADMIN = "bench-admin"
# Ray starts replica workers with OMP_NUM_THREADS=1; in-process engines get the same, or the
# comparison measures torch's thread oversubscription on 2 cores (docs: FACTS "torch threads").
os.environ.setdefault("OMP_NUM_THREADS", "1")


async def _run(urls: list[str], n: int, concurrency: int, method: str, path: str, headers: dict[str, str]) -> dict:
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=120) as client:

        async def one(i: int) -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.request(
                    method, urls[i % len(urls)] + path, json=CHAT if method == "POST" else None, headers=headers
                )
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - start
    return {**summarize(latencies), "rps": n / elapsed}


def leg(
    urls: list[str],
    n: int,
    concurrency: int,
    method: str = "POST",
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> dict:
    return asyncio.run(_run(urls, n, concurrency, method, path, headers or {}))


def _key(data: Path, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "keys", "--data-dir", str(data), "create", "--rpm", "1000000"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout)["key"])


@contextmanager
def _started(server: Any) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-src", help="another source tree's src/ for a second Ray leg (e.g. /work/main/src)")
    ap.add_argument("--only-ray", action="store_true", help="only leg 1 (Ray vs in-process)")
    args = ap.parse_args()
    n = args.requests
    tmp = Path(tempfile.mkdtemp(prefix="mmbench-cluster-"))
    config = tmp / "catalog.yaml"
    config.write_text(CATALOG)
    models = tmp / "models"
    results: dict[str, list[dict]] = {}

    def add(name: str, value: dict) -> None:
        results.setdefault(name, []).append(value)

    with ExitStack() as stack:
        ray = RayCluster(cpus_per_node=4).start(nodes=1)
        stack.callback(ray.stop)
        base_ray = None
        if args.baseline_src:
            base_ray = RayCluster(cpus_per_node=4)
            # its raylet's workers (the replica actors) import the baseline tree first
            base_ray.env["PYTHONPATH"] = os.pathsep.join([args.baseline_src, base_ray.env["PYTHONPATH"]])
            base_ray.start(nodes=1)
            stack.callback(base_ray.stop)

        def data(name: str) -> Path:
            d = tmp / name
            d.mkdir(exist_ok=True)
            if not (d / "models").exists():
                (d / "models").symlink_to(models, target_is_directory=True)
            return d

        models.mkdir()
        local = stack.enter_context(mmserve(data("local"), "--config", str(config), wait_for=["tiny-text"]))
        local2 = None
        if not args.only_ray:
            local2 = stack.enter_context(mmserve(data("local2"), "--config", str(config), wait_for=["tiny-text"]))

        def on_cluster(name: str, cluster: Any) -> str:
            """A mmserve whose replicas are placed on ``cluster``."""
            env = {**cluster.env, "MMSERVE_CLUSTER__ADDRESS": cluster.address}
            return stack.enter_context(mmserve(data(name), "--config", str(config), wait_for=["tiny-text"], env=env))

        remote = on_cluster("ray", ray)
        base_remote = on_cluster("ray-baseline", base_ray) if base_ray is not None else None
        remote2 = None
        if not args.only_ray:
            remote2 = on_cluster("ray2", ray)  # attaches to the replica `remote` started
            pg = stack.enter_context(_started(PostgresServer()))
            redis = stack.enter_context(_started(RedisServer()))
            auth_env = {"MMSERVE_AUTH": "true", "MMSERVE_ADMIN_KEY": ADMIN}
            mem_env = dict(auth_env)
            shared_env = {**auth_env, "MMSERVE_DATABASE_URL": pg.new_database(), "MMSERVE_REDIS_URL": redis.url}
            mem = stack.enter_context(mmserve(data("mem"), "--config", str(config), env=mem_env))
            shared = stack.enter_context(mmserve(data("shared"), "--config", str(config), env=shared_env))
            mem_key = {"Authorization": f"Bearer {_key(data('mem'), mem_env)}"}
            shared_key = {"Authorization": f"Bearer {_key(data('shared'), shared_env)}"}

        for url in (local, local2, remote, remote2, base_remote):
            if url:
                leg([url], 20, 4)  # warm up
        for _ in range(args.rounds):  # interleaved: every leg once per round
            add("inprocess_c1", leg([local], n // 4, 1))
            add("ray_c1", leg([remote], n // 4, 1))
            if base_remote:
                add("baseline_ray_c1", leg([base_remote], n // 4, 1))
            add("inprocess_c16", leg([local], n, 16))
            add("ray_c16", leg([remote], n, 16))
            if base_remote:
                add("baseline_ray_c16", leg([base_remote], n, 16))
            if args.only_ray:
                continue
            add("one_gateway_c16", leg([local], n, 16))
            assert local2 is not None
            add("two_gateways_c16", leg([local, local2], n, 16))
            add("one_gateway_shared_replica_c16", leg([remote], n, 16))
            assert remote2 is not None
            add("two_gateways_shared_replica_c16", leg([remote, remote2], n, 16))
            add("auth_memory_c1", leg([mem], n, 1, "GET", "/v1/models", mem_key))
            add("auth_pg_redis_c1", leg([shared], n, 1, "GET", "/v1/models", shared_key))

    def med(name: str, field: str) -> float:
        xs = sorted(r[field] for r in results[name])
        return xs[len(xs) // 2]

    summary = {
        "ray_added_p50_ms_c1": (med("ray_c1", "p50_s") - med("inprocess_c1", "p50_s")) * 1000,
        "ray_added_p99_ms_c1": (med("ray_c1", "p99_s") - med("inprocess_c1", "p99_s")) * 1000,
        "ray_vs_inprocess_rps_ratio_c16": med("ray_c16", "rps") / med("inprocess_c16", "rps"),
    }
    if "baseline_ray_c1" in results:
        summary |= {
            "baseline_ray_added_p50_ms_c1": (med("baseline_ray_c1", "p50_s") - med("inprocess_c1", "p50_s")) * 1000,
            "baseline_ray_added_p99_ms_c1": (med("baseline_ray_c1", "p99_s") - med("inprocess_c1", "p99_s")) * 1000,
            "baseline_ray_vs_inprocess_rps_ratio_c16": med("baseline_ray_c16", "rps") / med("inprocess_c16", "rps"),
            "ray_vs_baseline_ray_p50_ratio_c1": med("ray_c1", "p50_s") / med("baseline_ray_c1", "p50_s"),
            "ray_vs_baseline_ray_rps_ratio_c16": med("ray_c16", "rps") / med("baseline_ray_c16", "rps"),
        }
    if not args.only_ray:
        summary |= {
            "two_vs_one_gateway_rps_ratio_c16": med("two_gateways_c16", "rps") / med("one_gateway_c16", "rps"),
            "two_vs_one_gateway_same_ray_replica_rps_ratio_c16": med("two_gateways_shared_replica_c16", "rps")
            / med("one_gateway_shared_replica_c16", "rps"),
            "pg_redis_added_p50_ms_per_request": (med("auth_pg_redis_c1", "p50_s") - med("auth_memory_c1", "p50_s"))
            * 1000,
        }
    write_result("cluster", {"requests": n, "rounds": args.rounds, "summary": summary, "legs": results})


if __name__ == "__main__":
    main()
