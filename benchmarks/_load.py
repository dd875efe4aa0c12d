"""Chat load for the engine benchmarks: closed-loop workers for a fixed time, per-request timings.

Each worker sends a request (streamed, or waiting for the whole answer), notes the time to the
first content (streamed) and to the end,
and sends the next one until the level's time is up (requests started before then finish).
Also finds the unix socket of the vLLM server mmserve started for a card, so the same server
can be called directly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from _common import summarize


@dataclass
class Target:
    name: str
    client: httpx.AsyncClient
    path: str  # the chat completions path on the client's base URL
    body: dict[str, Any] | Callable[[], dict[str, Any]]  # the same body, or a new one per request
    headers: dict[str, str] = field(default_factory=dict)

    def next_body(self) -> dict[str, Any]:
        return self.body() if callable(self.body) else self.body


async def one_request(target: Target) -> tuple[float, float | None, int]:
    """(latency s, TTFT s, completion tokens) of one request; raises on an error answer.

    A streamed request's TTFT is the time to its first content; one that waits for the whole
    answer (a body without ``stream``) has none."""
    start = time.perf_counter()
    first: float | None = None
    tokens = 0
    body = target.next_body()
    async with target.client.stream("POST", target.path, json=body, headers=target.headers) as r:
        if r.status_code != 200:
            await r.aread()
            raise RuntimeError(f"{target.name}: HTTP {r.status_code} {r.text[:200]}")
        if not body.get("stream"):
            answer = json.loads(await r.aread())
            return time.perf_counter() - start, None, int(answer["usage"]["completion_tokens"])
        async for line in r.aiter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            if "error" in chunk:
                raise RuntimeError(f"{target.name}: {chunk['error']}")
            if first is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
                first = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"].get("completion_tokens") or tokens
    return time.perf_counter() - start, first, tokens


async def run_level(target: Target, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    ttfts: list[float] = []
    tokens = 0
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal tokens
        while time.perf_counter() < deadline:
            try:
                latency, ttft, n = await one_request(target)
            except (httpx.HTTPError, RuntimeError) as e:
                errors.append(str(e)[:300])
                await asyncio.sleep(0.05)
                continue
            latencies.append(latency)
            if ttft is not None:
                ttfts.append(ttft)
            tokens += n

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return {
        "leg": target.name,
        "concurrency": concurrency,
        "wall_s": wall,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "requests_per_s": len(latencies) / wall,
        "output_tokens_per_s": tokens / wall,
        "ttft": summarize(ttfts),
        "latency": summarize(latencies),
    }


def vllm_socket(card_id: str) -> Path:
    """The unix socket of the vLLM API server mmserve started for ``card_id`` (read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "vllm.entrypoints.openai.api_server" in argv and card_id in argv and "--uds" in argv:
            return Path(argv[argv.index("--uds") + 1])
    raise RuntimeError(f"no vLLM server for '{card_id}' is running")


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None
