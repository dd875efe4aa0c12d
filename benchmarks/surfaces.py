"""The new API surfaces against chat, and embeddings batched against one input per request.

    python benchmarks/surfaces.py [--rounds 30] [--batch 64]

Starts `mmserve serve` on the demo catalog and, in one run with the legs interleaved round
by round (so that load on a shared machine hits every leg alike):

- the same one-token answer from demo-vlm through /v1/chat/completions, /v1/responses
  (stored, and store: false) and /v1/completions: what each surface adds to chat's engine path
  (conversion, shaping, the SQL write of a stored response), as p50 ratios over chat;
- demo-embed on `--batch` short texts in one request against one request per text, and
  8 images likewise: inputs/s ratios.

Writes benchmarks/results/surfaces.json.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image

from _common import mmserve, summarize, write_result

PROMPT = "What is shown in this image? Describe the image in one sentence."


def _image(i: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (i * 30 % 256, 80, 160)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    texts = [f"sentence number {i}: the quick brown fox jumps over the lazy dog" for i in range(args.batch)]
    images = [{"type": "image_url", "image_url": {"url": _image(i)}} for i in range(8)]
    legs: dict[str, Callable[[httpx.Client], None]] = {}

    def post(path: str, body: dict) -> Callable[[httpx.Client], None]:
        def call(client: httpx.Client) -> None:
            r = client.post(path, json=body)
            r.raise_for_status()

        return call

    chat = {"model": "demo-vlm", "max_tokens": 1, "temperature": 0}
    legs["chat.completions"] = post("/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": PROMPT}]})
    responses = {"model": "demo-vlm", "input": PROMPT, "max_output_tokens": 1, "temperature": 0}
    legs["responses (store)"] = post("/v1/responses", responses)
    legs["responses (store: false)"] = post("/v1/responses", {**responses, "store": False})
    legs["completions"] = post("/v1/completions", {**chat, "prompt": f"<|user|>{PROMPT}<|end|><|assistant|>"})
    embed = {"model": "demo-embed", "encoding_format": "base64"}
    legs[f"embeddings: {args.batch} texts in one request"] = post("/v1/embeddings", {**embed, "input": texts})

    def one_by_one(items: list) -> Callable[[httpx.Client], None]:
        def call(client: httpx.Client) -> None:
            for item in items:
                client.post("/v1/embeddings", json={**embed, "input": [item]}).raise_for_status()

        return call

    legs[f"embeddings: {args.batch} texts, one per request"] = one_by_one(texts)
    legs["embeddings: 8 images in one request"] = post("/v1/embeddings", {**embed, "input": images})
    legs["embeddings: 8 images, one per request"] = one_by_one(images)

    times: dict[str, list[float]] = {name: [] for name in legs}
    names = list(legs)
    with (
        tempfile.TemporaryDirectory() as tmp,
        mmserve(Path(tmp), wait_for=["demo-vlm"]) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        for call in legs.values():  # warm up: builds and loads serverless demo-embed
            call(client)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # each leg follows each other leg
                start = time.perf_counter()
                legs[name](client)
                times[name].append(time.perf_counter() - start)
    p50 = {name: statistics.median(xs) for name, xs in times.items()}
    chat_p50 = p50["chat.completions"]
    result = {
        "rounds": args.rounds,
        "batch": args.batch,
        "legs": {name: summarize(xs) for name, xs in times.items()},
        "p50_over_chat": {
            name: p50[name] / chat_p50 for name in ("responses (store)", "responses (store: false)", "completions")
        },
        "embedding_inputs_per_s": {
            "texts batched over one per request": p50[f"embeddings: {args.batch} texts, one per request"]
            / p50[f"embeddings: {args.batch} texts in one request"],
            "images batched over one per request": p50["embeddings: 8 images, one per request"]
            / p50["embeddings: 8 images in one request"],
        },
    }
    write_result("surfaces", result)


if __name__ == "__main__":
    main()
