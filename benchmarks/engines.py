"""The same tiny model on the transformers engine and on the vLLM engine, and vLLM through mmserve vs called directly.

    python benchmarks/engines.py [--levels 1 4 16 64] [--seconds 12] [--rounds 1] [--max-tokens 16] [--python PATH]
                                 [--no-pin] [--whole] [--server-src OTHER/src]

Starts one `mmserve serve` with two dedicated cards on `demo:tool-lm-hd32` (a tiny random
Llama, 32-wide heads): `tf` (engine transformers-chat) and `vl` (engine vllm, its server from
`--python`, default ./.venv-vllm made by `mmserve vllm-venv` when missing). At each
concurrency it runs three legs, in an order that rotates from level to level:

- transformers: streamed requests to `tf` through mmserve;
- vllm: the same requests to `vl` through mmserve;
- vllm-direct: the same vLLM server, called on its unix socket with exactly the body mmserve
  sends it (built by mmserve's own mapping: logit bias, usage options), so the difference
  is mmserve's hop alone.

``--no-pin`` leaves vLLM's EngineCore unbound (``pin_engine_core: false``): on a CPU host its
busy poll then takes the core vLLM leaves its API server (see engines/vllm/cpu_affinity.py).

``--whole``: every client waits for the whole answer (no ``stream``), through mmserve and directly
(mmserve still streams from vLLM: it meters a client that leaves early). ``--server-src``: the
mmserve server runs another tree (PYTHONPATH), e.g. main's, against this tree's direct body.

Every request streams 16 tokens (ignore_eos) at temperature 1. Writes
benchmarks/results/engines.json: requests/s, output tokens/s, TTFT and latency p50/p99 per
leg and level, and the ratios (vLLM over transformers, vLLM c16 over c1, through mmserve over
direct; the p50 latency mmserve adds). The load generator shares the machine's cores with
the servers: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

from _common import mmserve, write_result
from _load import Target, ratio, run_level, vllm_socket
from mmserve.catalog.builders import build_demo_model
from mmserve.engines.types import ChatInput, ChatMessage, SamplingParams
from mmserve.engines.vllm.mapping import SUPPRESS_BIAS, RequestShape, chat_body
from mmserve.engines.vllm.model_files import ModelFiles
from mmserve.engines.vllm.venv import create_vllm_venv

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Hello, how can I help you today? Describe the image in one sentence."


def catalog(python: Path, source: Path, *, pin: bool = True) -> dict[str, Any]:
    common = {"task": "chat", "source": str(source), "limits": {"max_output_tokens": 256}}
    return {
        "models": [
            {
                **common,
                "id": "tf",
                "engine": "transformers-chat",
                # no max_concurrency: the engine's batch size (max_batch_size, 16 on a CPU) is admitted
                "deployment": {"mode": "dedicated", "max_queue": 256},
            },
            {
                **common,
                "id": "vl",
                "engine": "vllm",
                "options": {
                    "python": str(python),
                    "dtype": "float32",
                    "enforce_eager": True,
                    "kv_cache_memory_bytes": "256M",
                    "pin_engine_core": pin,
                },
                "deployment": {"mode": "dedicated", "max_concurrency": 128, "max_queue": 256},
            },
        ]
    }


def direct_body(source: Path, max_tokens: int, *, streamed: bool = True) -> dict[str, Any]:
    """What mmserve's vLLM engine sends vLLM for the benchmark's request (asked whole, unless ``streamed``)."""
    files = ModelFiles.read(source)
    request = ChatInput(
        messages=[ChatMessage("user", PROMPT)],
        params=SamplingParams(max_tokens=max_tokens, temperature=1.0, ignore_eos=True),
    )
    shape = RequestShape("vl", max_tokens, logit_bias={str(t): SUPPRESS_BIAS for t in files.suppress_tokens})
    body = chat_body(request, shape)
    if not streamed:
        del body["stream"], body["stream_options"]
    return body


async def bench(url: str, socket: Path, body: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    user = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": args.max_tokens,
        "temperature": 1.0,
        "ignore_eos": True,
    }
    if not args.whole:
        user.update(stream=True, stream_options={"include_usage": True})
    limits = httpx.Limits(max_connections=max(args.levels) + 8, max_keepalive_connections=max(args.levels) + 8)
    async with (
        httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as mm,
        httpx.AsyncClient(
            base_url="http://vllm", transport=httpx.AsyncHTTPTransport(uds=str(socket)), timeout=600, limits=limits
        ) as direct,
    ):
        legs = [
            Target("transformers", mm, "/v1/chat/completions", {**user, "model": "tf"}),
            Target("vllm", mm, "/v1/chat/completions", {**user, "model": "vl"}),
            Target("vllm-direct", direct, "/v1/chat/completions", body),
        ]
        for leg in legs:  # warm-up: first requests compile and allocate
            await run_level(leg, 2, 2.0)
        results = []
        for r in range(args.rounds):
            for i, level in enumerate(args.levels):
                order = legs[(i + r) % 3 :] + legs[: (i + r) % 3]  # rotate: no leg always runs first
                for leg in order:
                    result = await run_level(leg, level, args.seconds)
                    print(
                        f"round {r} c={level:<3} {leg.name:<13} {result['requests_per_s']:7.1f} req/s "
                        f"p50 {result['latency'].get('p50_s', 0) * 1000:7.1f} ms  errors {result['errors']}",
                        flush=True,
                    )
                    results.append({**result, "round": r})
        return results


def ratios(results: list[dict[str, Any]], levels: list[int]) -> dict[str, Any]:
    """The ratios of each round (legs of one round ran back to back), then their medians over the rounds."""
    rounds = sorted({r["round"] for r in results})
    each = [round_ratios([r for r in results if r["round"] == n], levels) for n in rounds]
    return {"median_over_rounds": _median(each), "per_round": each}


def _median(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dicts[0].items():
        if isinstance(value, dict):
            out[key] = _median([d[key] for d in dicts])
        else:
            values = [d[key] for d in dicts if d[key] is not None]
            out[key] = statistics.median(values) if values else None
    return out


def round_ratios(results: list[dict[str, Any]], levels: list[int]) -> dict[str, Any]:
    by = {(r["leg"], r["concurrency"]): r for r in results}
    out: dict[str, Any] = {"vllm_over_transformers_rps": {}, "mmserve_over_direct_rps": {}, "added_p50_latency_ms": {}}
    for c in levels:
        tf, vl, direct = by[("transformers", c)], by[("vllm", c)], by[("vllm-direct", c)]
        out["vllm_over_transformers_rps"][c] = ratio(vl["requests_per_s"], tf["requests_per_s"])
        out["mmserve_over_direct_rps"][c] = ratio(vl["requests_per_s"], direct["requests_per_s"])
        if vl["latency"] and direct["latency"]:
            out["added_p50_latency_ms"][c] = (vl["latency"]["p50_s"] - direct["latency"]["p50_s"]) * 1000
    first, high = levels[0], 16 if 16 in levels else levels[-1]
    for leg in ("transformers", "vllm", "vllm-direct"):
        out[f"{leg}_c{high}_over_c{first}_rps"] = ratio(
            by[(leg, high)]["requests_per_s"], by[(leg, first)]["requests_per_s"]
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--rounds", type=int, default=1, help="every level and leg this many times (ratios: medians)")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument(
        "--python", type=Path, default=None, help="vLLM's interpreter (default: ./.venv-vllm, made if missing)"
    )
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument(
        "--no-pin", action="store_true", help="leave vLLM's EngineCore unbound (options.pin_engine_core: false)"
    )
    p.add_argument("--whole", action="store_true", help="clients wait for whole answers (no stream)")
    p.add_argument("--server-src", type=Path, default=None, help="run the mmserve server from another tree's src/")
    args = p.parse_args()
    python = args.python or create_vllm_venv(ROOT / ".venv-vllm")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mmserve-bench-engines-"))
    source = build_demo_model("tool-lm-hd32", data_dir / "models")
    config = data_dir / "engines.yaml"
    config.write_text(yaml.safe_dump(catalog(python, source, pin=not args.no_pin)))
    # one torch thread for the transformers engine: two oversubscribe a shared 2-core machine (FACTS.md);
    # vLLM sets its own threads. mmserve sets torch's threads itself (MMSERVE_TORCH_THREADS, else the cores
    # divided by the catalog's torch replicas: 2 here), overriding OMP_NUM_THREADS.
    env = {"OMP_NUM_THREADS": "1", "MMSERVE_TORCH_THREADS": "1"}
    if args.server_src:
        env["PYTHONPATH"] = str(args.server_src.resolve())
    body = direct_body(source, args.max_tokens, streamed=not args.whole)
    with mmserve(data_dir, "--config", str(config), wait_for=["tf", "vl"], env=env, timeout=1200) as url:
        results = asyncio.run(bench(url, vllm_socket("vl"), body, args))
    write_result(
        "engines",
        {
            "model": "demo:tool-lm-hd32",
            "pin_engine_core": not args.no_pin,
            "max_tokens": args.max_tokens,
            "whole_answers": args.whole,
            "server_src": str(args.server_src) if args.server_src else None,
            "seconds_per_leg": args.seconds,
            "rounds": args.rounds,
            "ratios": ratios(results, args.levels),
            "legs": results,
        },
    )


if __name__ == "__main__":
    main()
