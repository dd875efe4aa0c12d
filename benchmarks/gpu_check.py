"""GPU check: a LLaVA-1.5-7B-sized model with images, through mmserve's vLLM engine vs the same vLLM server alone.

    python benchmarks/gpu_check.py --python /path/to/vllm-env/bin/python [--seconds 30] [--levels 1 32]

Not run in CI (it needs an NVIDIA GPU with ~20 GB free and a CUDA vLLM environment:
`mmserve vllm-venv --target cuda` on a machine with internet access). It exits with status 2
and says why when there is no CUDA device. About 5 minutes on one H100-class GPU:

1. Writes a LLaVA-1.5-7B architecture (CLIP ViT-L/14 at 336 px -> 576 image tokens, a
   2-layer GELU projector, a 32-layer 4096-wide Llama) as config files only, with a byte-level
   BPE tokenizer of 32,000 tokens trained on seeded random words. vLLM builds the weights
   itself, seeded and random (``--load-format dummy``): nothing is downloaded, nothing large
   written. bfloat16.
2. Serves it with `mmserve serve` (one dedicated `engine: vllm` card, CUDA graphs on).
3. At each concurrency, interleaved: streamed chat requests with a new 640x480 JPEG and
   a question, 32 output tokens each (ignore_eos), to mmserve (which fetches nothing here,
   decodes, bounds and downscales each image to the model's 336 px, then hands vLLM a PNG),
   and the same requests straight to the vLLM server's socket (vLLM decodes the JPEG itself).
4. Writes benchmarks/results/gpu_check.json: requests/s, output tokens/s, TTFT and latency
   p50/p99 per leg and level, and mmserve / direct ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import itertools
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import yaml
from PIL import Image

from _common import mmserve, write_result
from _load import Target, ratio, run_level, vllm_socket

CARD = "llava-7b-random"
IMAGE_SIDE, PATCH = 336, 14
VOCAB = 32000


def cuda_devices(python: Path) -> list[str]:
    """The GPUs vLLM's environment sees; exits (status 2) with the reason when there are none."""
    if not shutil.which("nvidia-smi"):
        _fail("gpu_check needs an NVIDIA GPU: nvidia-smi is not on PATH (no driver). It does not run on CPUs.")
    if not python.exists():
        _fail(f"gpu_check: {python} does not exist. Make a CUDA vLLM environment: mmserve vllm-venv --target cuda")
    probe = subprocess.run(
        [str(python), "-c", "import torch; print(torch.cuda.is_available(), torch.cuda.device_count())"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0 or not probe.stdout.startswith("True"):
        _fail(f"{probe.stdout}{probe.stderr}gpu_check: the vLLM environment's torch sees no CUDA device.")
    names = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True, text=True
    )
    return [line.strip() for line in names.stdout.splitlines() if line.strip()]


def _fail(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(2)


def write_llava_7b(out: Path) -> Path:
    """Config, tokenizer and processor of a LLaVA-1.5-7B-sized model; no weight files (vLLM makes them)."""
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor

    from mmserve.catalog.builders.tokenizer import CHAT_TEMPLATE, train_bpe_tokenizer

    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 12))) for _ in range(60_000)]
    sentences = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    tok = train_bpe_tokenizer(vocab_size=VOCAB, sentences=sentences)
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=IMAGE_SIDE,
        patch_size=PATCH,
        projection_dim=768,
        hidden_act="quick_gelu",
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=(IMAGE_SIDE // PATCH) ** 2,
    )
    config.architectures = ["LlavaForConditionalGeneration"]
    config.dtype = "bfloat16"
    config.save_pretrained(out)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": IMAGE_SIDE}, crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}
        ),
        tokenizer=tok,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    return out


def catalog(python: Path, source: Path) -> dict[str, Any]:
    return {
        "models": [
            {
                "id": CARD,
                "task": "chat",
                "engine": "vllm",
                "source": str(source),
                "options": {
                    "python": str(python),
                    "dtype": "bfloat16",
                    "max_model_len": 4096,
                    "gpu_memory_utilization": 0.85,
                    "limit_mm_per_prompt": {"image": 1},
                    "extra_args": ["--load-format", "dummy", "--seed", "0"],
                    "startup_timeout_s": 480,
                },
                "capabilities": {"vision": True, "max_images": 1, "context_length": 4096},
                "limits": {"max_output_tokens": 256, "image_input_side": IMAGE_SIDE},
                "deployment": {"mode": "dedicated", "max_concurrency": 256, "max_queue": 256},
            }
        ]
    }


def jpeg(i: int) -> str:
    """The i-th 640x480 JPEG: a colour of its own (vLLM caches processed images by content, so none repeats)."""
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), ((i >> 16) & 255, (i >> 8) & 255, i & 255)).save(buf, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def image_requests(base: dict[str, Any], counter: Iterator[int]) -> Callable[[], dict[str, Any]]:
    """A body maker: each request asks about a new image."""

    def body() -> dict[str, Any]:
        content = [
            {"type": "text", "text": "What is shown in this image?"},
            {"type": "image_url", "image_url": {"url": jpeg(next(counter))}},
        ]
        return {**base, "messages": [{"role": "user", "content": content}]}

    return body


async def bench(url: str, socket: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    counter = itertools.count(1)  # shared: no image is sent twice, whichever the leg
    base = {
        "max_tokens": args.max_tokens,
        "temperature": 1.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "model": CARD,
    }
    limits = httpx.Limits(max_connections=max(args.levels) + 8)
    async with (
        httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as mm,
        httpx.AsyncClient(
            base_url="http://vllm", transport=httpx.AsyncHTTPTransport(uds=str(socket)), timeout=600, limits=limits
        ) as direct,
    ):
        legs = [
            Target("mmserve", mm, "/v1/chat/completions", image_requests(base, counter)),
            Target("direct", direct, "/v1/chat/completions", image_requests(base, counter)),
        ]
        for leg in legs:
            await run_level(leg, 4, 10.0)  # warm-up
        results = []
        for i, level in enumerate(args.levels):
            for leg in legs if i % 2 == 0 else legs[::-1]:
                result = await run_level(leg, level, args.seconds)
                print(f"c={level:<3} {leg.name:<8} {result['requests_per_s']:7.2f} req/s  errors {result['errors']}")
                results.append(result)
        return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", type=Path, required=True, help="the CUDA vLLM environment's python")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 32])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--max-tokens", type=int, default=32)
    args = p.parse_args()
    gpus = cuda_devices(args.python)
    started = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="mmserve-gpu-check-"))
    source = write_llava_7b(data_dir / "llava-7b-random")
    config = data_dir / "gpu.yaml"
    config.write_text(yaml.safe_dump(catalog(args.python, source)))
    with mmserve(data_dir, "--config", str(config), wait_for=[CARD], timeout=600) as url:
        health = httpx.get(url + "/health").json()["models"][CARD]
        if health != "loaded":
            _fail(f"gpu_check: the model did not load ({health}); see the vLLM output in /tmp/mmserve-vllm-*/")
        results = asyncio.run(bench(url, vllm_socket(CARD), args))
    by = {(r["leg"], r["concurrency"]): r for r in results}
    write_result(
        "gpu_check",
        {
            "gpus": gpus,
            "model": "LLaVA-1.5-7B architecture, seeded random weights (vLLM --load-format dummy), bfloat16",
            "image": "640x480 JPEG per request (mmserve downscales to 336 px)",
            "max_tokens": args.max_tokens,
            "seconds_per_leg": args.seconds,
            "ratios": {
                "mmserve_over_direct_rps": {
                    c: ratio(by[("mmserve", c)]["requests_per_s"], by[("direct", c)]["requests_per_s"])
                    for c in args.levels
                },
                "added_p50_latency_ms": {
                    c: (by[("mmserve", c)]["latency"]["p50_s"] - by[("direct", c)]["latency"]["p50_s"]) * 1000
                    for c in args.levels
                    if by[("mmserve", c)]["latency"] and by[("direct", c)]["latency"]
                },
            },
            "legs": results,
            "total_s": time.monotonic() - started,
        },
    )


if __name__ == "__main__":
    main()
