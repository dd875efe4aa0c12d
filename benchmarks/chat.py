"""Chat throughput and latency on the demo VLM: requests/s and p50/p99 at several concurrencies.

    python benchmarks/chat.py [--requests 48] [--concurrency 1 4 8] [--max-tokens 16]

Starts `mmserve serve` on the demo catalog in a subprocess, sends image+text chat requests
with the async openai-compatible HTTP API, and writes benchmarks/results/chat.json. The
ratios (throughput at concurrency c over concurrency 1) compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from _common import mmserve, summarize, write_result


def _image_uri() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (40, 90, 160)).save(buf, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


async def run_level(url: str, concurrency: int, requests: int, max_tokens: int, stream: bool) -> dict:
    body = {
        "model": "demo-vlm",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is shown in this image?"},
                    {"type": "image_url", "image_url": {"url": _image_uri()}},
                ],
            }
        ],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "stream": stream,
    }
    latencies: list[float] = []
    ttfts: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                queue.get_nowait()
                start = time.perf_counter()
                if stream:
                    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                        first = None
                        async for line in r.aiter_lines():
                            if first is None and '"content": "' in line and '"content": ""' not in line:
                                first = time.perf_counter() - start
                        ok = r.status_code == 200
                    if first is not None:
                        ttfts.append(first)
                else:
                    r = await client.post(f"{url}/v1/chat/completions", json=body)
                    ok = r.status_code == 200
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    out = {
        "concurrency": concurrency,
        "requests": requests,
        "errors": errors,
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "latency": summarize(latencies),
    }
    if stream:
        out["ttft"] = summarize(ttfts)
    return out


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=48)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--data-dir", type=Path, default=None)
    args = p.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mmserve-bench-"))
    with mmserve(data_dir, wait_for=["demo-vlm"]) as url:
        await run_level(url, 2, 4, args.max_tokens, False)  # warm-up
        levels = [await run_level(url, c, args.requests, args.max_tokens, False) for c in args.concurrency]
        streamed = await run_level(url, args.concurrency[-1], args.requests, args.max_tokens, True)
    base = levels[0]["requests_per_s"]
    write_result(
        "chat",
        {
            "model": "demo-vlm",
            "max_tokens": args.max_tokens,
            "levels": levels,
            "streaming": streamed,
            "throughput_ratio_vs_concurrency_1": {str(lv["concurrency"]): lv["requests_per_s"] / base for lv in levels},
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
