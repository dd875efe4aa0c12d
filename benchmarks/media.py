"""Image ingest throughput: large JPEG / PNG / WEBP data URIs -> model-ready images.

    python benchmarks/media.py [--images 8] [--rounds 5] [--size 3000x2000] [--concurrency 2] [--input-side 336]

Compares, in one run and at the same concurrency, mmserve's ingest path
(:class:`mmserve.media.decoder.ProcessDecoder`, the default, and ``ThreadDecoder``: base64
validation, header checks, JPEG DCT scaling, box reduction, Lanczos, EXIF/alpha handling)
against the naive path most servers take (base64-decode, full decode, convert to RGB,
one bicubic resize to the same size), both producing an image sized for a CLIP/LLaVA-style
processor (short side ``--input-side``). With transformers installed it also measures the
same two paths followed by the processor itself (what the model really waits for), where the
naive path hands the processor the full-size image. Then single images one at a time
(``--single`` per format): naive, mmserve's process and thread decoders in turn on each image,
the ratio taken per image (a loaded machine moves less within one image's legs). Then one request with several images
(``--request-images`` PNGs, by default 4) through :class:`MediaIngestor` as a chat request takes
them (``load_images``: side by side in the decode workers) against the same images loaded one
after another (``load_image`` in turn), rounds interleaved, each with the machine's parallel ceiling (two
CPU-bound processes at once vs in turn: 2.0 on two free cores). Writes benchmarks/results/media.json;
the figures to compare are the ratios, taken within each round and reported as medians.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from _common import write_result
from mmserve.media.decodejob import DecodeJob
from mmserve.media.decoder import Decoder, ProcessDecoder, ThreadDecoder
from mmserve.media.image.decode import ImageInputSize, ImageLimits, plan_size
from mmserve.media.image.ingest import ImageRef, MediaIngestor
from mmserve.settings import LimitSettings, Settings

FORMATS = {"jpeg": ("JPEG", {"quality": 90}), "png": ("PNG", {}), "webp": ("WEBP", {"quality": 90})}


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like test image: smooth random colour fields plus fine grain (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.integers(-6, 7, (height, width, 3), dtype=np.int16)
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def data_uris(fmt: str, n: int, size: tuple[int, int]) -> list[str]:
    name, params = FORMATS[fmt]
    out = []
    for i in range(n):
        buf = io.BytesIO()
        photo(*size, seed=i).save(buf, name, **params)
        out.append(f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def naive(uri: str, final: tuple[int, int] | None) -> Image.Image:
    """Decode everything, then resize once (or leave the resize to the processor: ``final=None``)."""
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    return img.resize(final, Image.Resampling.BICUBIC) if final else img


def run_naive(uris: list[str], final: tuple[int, int] | None, concurrency: int, then: Callable[[Any], Any]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda u: then(naive(u, final)), uris))
    return time.perf_counter() - start


async def run_mmserve(
    decoder: Decoder, uris: list[str], target: ImageInputSize, concurrency: int, then: Callable[[Any], Any]
) -> float:
    limits = ImageLimits(max_bytes=256 * 1024 * 1024)
    queue = list(uris)
    pool = ThreadPoolExecutor(concurrency)
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        while queue:
            uri = queue.pop()
            payload = uri.split(",", 1)[1].encode("ascii")
            img = await decoder.decode(DecodeJob(payload, limits, "image_url", base64=True, input_size=target))
            await loop.run_in_executor(pool, then, img)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    pool.shutdown()
    return time.perf_counter() - start


_BURN = "import os, zlib\nd = os.urandom(1 << 22)\nfor _ in range(4): zlib.compress(d, 6)"


def parallel_ceiling() -> float:
    """What the machine gives two CPU-bound processes now: (two in turn) / (two at once).

    2.0 on two free cores; on a shared machine it says how much parallel speed-up there was to have.
    """

    def run(n: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _BURN]) for _ in range(n)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start

    return 2 * run(1) / run(2)


class _Card:
    """The card limits the media layer reads (as ``cards.Limits`` has them), wide enough for the test images."""

    image_formats = ("png", "jpeg", "webp")
    max_image_side = None
    max_image_pixels = None
    min_image_side = None
    allow_image_urls = False
    max_request_image_bytes = None
    max_request_image_pixels = None


async def request_legs(fmt: str, images: int, size: tuple[int, int], target: ImageInputSize, rounds: int) -> Any:
    """One request's ``images`` images: side by side (``load_images``) vs one after another, same ingestor."""
    lim = LimitSettings(max_request_image_bytes=2**31, max_request_image_pixels=2**40, max_data_uri_bytes=2**30)
    media = MediaIngestor(Settings(limits=lim))
    card = _Card()
    refs = [ImageRef(u, param=f"image_url[{i}]") for i, u in enumerate(data_uris(fmt, images, size))]
    try:

        async def together() -> float:
            start = time.perf_counter()
            await media.load_images(refs, card, model="m", input_size=target)
            return time.perf_counter() - start

        async def in_turn() -> float:
            start = time.perf_counter()
            for ref in refs:
                await media.load_image(ref, card, model="m", input_size=target)
            return time.perf_counter() - start

        await together()  # warm-up: start the workers
        per_round, ceiling = [], []
        for r in range(rounds):
            legs = [("parallel", together), ("sequential", in_turn)]
            took = {name: await leg() for name, leg in (legs if r % 2 == 0 else legs[::-1])}
            per_round.append(took["sequential"] / took["parallel"])
            ceiling.append(await asyncio.to_thread(parallel_ceiling))
        return {
            "images_per_request": images,
            "decode_concurrency": lim.max_decode_concurrency,
            "parallel_over_sequential_median": round(statistics.median(per_round), 2),
            "per_round": [round(x, 2) for x in per_round],
            "machine_parallel_ceiling_median": round(statistics.median(ceiling), 2),
            "machine_parallel_ceiling_per_round": [round(x, 2) for x in ceiling],
        }
    finally:
        await media.aclose()


async def single_legs(fmt: str, count: int, size: tuple[int, int], target: ImageInputSize, final: Any) -> Any:
    """One image at a time: naive, process and thread decodes of the same image back to back; per-image ratios."""
    uris = data_uris(fmt, 3, size)
    limits = ImageLimits(max_bytes=256 * 1024 * 1024)
    decoders: dict[str, Decoder] = {
        "mmserve_process": ProcessDecoder(1, 120, 0),
        "mmserve_thread": ThreadDecoder(1, 120),
    }
    took: dict[str, list[float]] = {"naive": [], **{k: [] for k in decoders}}
    try:
        for i in range(count + 1):  # the first is a warm-up
            uri = uris[i % len(uris)]
            job = DecodeJob(uri.split(",", 1)[1].encode("ascii"), limits, "image_url", base64=True, input_size=target)
            start = time.perf_counter()
            naive(uri, final)
            took["naive"].append(time.perf_counter() - start)
            for name, decoder in decoders.items():
                start = time.perf_counter()
                await decoder.decode(job)
                took[name].append(time.perf_counter() - start)
    finally:
        for decoder in decoders.values():
            await decoder.aclose()
    base = took["naive"][1:]
    return {
        "images": count,
        "ms_median": {k: round(statistics.median(v[1:]) * 1000, 1) for k, v in took.items()},
        "speedup_vs_naive_median": {
            k: round(statistics.median(b / x for b, x in zip(base, v[1:], strict=True)), 2)
            for k, v in took.items()
            if k != "naive"
        },
    }


def processor_step(side: int) -> Callable[[Any], Any] | None:
    try:
        from transformers import CLIPImageProcessorPil
    except ImportError:
        return None
    proc = CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    return lambda img: proc(images=[img], return_tensors="np")["pixel_values"]


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=8, help="images per format, path and round")
    p.add_argument("--size", default="3000x2000")
    p.add_argument("--concurrency", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--input-side", type=int, default=336, help="the processor's short side (CLIP-L/336)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; ratios are taken within each")
    p.add_argument("--request-images", type=int, default=4, help="images of the one-request legs")
    p.add_argument("--formats", default=",".join(FORMATS), help="formats of the throughput legs")
    p.add_argument("--single", type=int, default=9, help="images per format, one at a time")
    args = p.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    assert len(size) == 2
    # what a CLIP/LLaVA-style processor reports (processor_input_size): its short side and its bicubic filter
    target = ImageInputSize(shortest_edge=args.input_side, resample=Image.Resampling.BICUBIC)
    final = plan_size(size[0], size[1], input_size=target) or (size[0], size[1])
    c = args.concurrency
    process = ProcessDecoder(c, 120, 0)
    thread = ThreadDecoder(c, 120)
    steps: dict[str, Callable[[Any], Any]] = {"image": lambda img: img}
    proc = processor_step(args.input_side)
    if proc is not None:
        steps["image+processor"] = proc
    results: dict[str, Any] = {}
    try:
        # warm up: start the worker processes and import every plugin once
        warm = data_uris("png", 1, (64, 64)) * c
        await run_mmserve(process, warm, target, c, lambda i: i)
        for fmt in args.formats.split(","):
            uris = data_uris(fmt, args.images, size)  # type: ignore[arg-type]
            mb = sum(len(u) for u in uris) / len(uris) / 1e6
            for step_name, step in steps.items():
                # the naive path resizes itself, or (with a processor) hands it the full image
                naive_final = final if step_name == "image" else None
                paths: dict[str, Callable[[], Awaitable[float]]] = {
                    "naive": lambda uris=uris, step=step, nf=naive_final: asyncio.to_thread(
                        run_naive, uris, nf, c, step
                    ),
                    "mmserve_process": lambda uris=uris, step=step: run_mmserve(process, uris, target, c, step),
                    "mmserve_thread": lambda uris=uris, step=step: run_mmserve(thread, uris, target, c, step),
                }
                # Several rounds, each running every path back to back (order rotated): the
                # ratio is taken within a round, so load from other processes cancels out;
                # the medians are reported.
                rounds: list[dict[str, float]] = []
                names = list(paths)
                for r in range(args.rounds):
                    per_s = {}
                    for name in names[r % len(names) :] + names[: r % len(names)]:
                        per_s[name] = args.images / await paths[name]()
                    rounds.append(per_s)
                results[f"{fmt}/{step_name}"] = {
                    "base64_mb_per_image": round(mb, 2),
                    "images_per_s_median": {k: round(statistics.median(r[k] for r in rounds), 2) for k in names},
                    "speedup_vs_naive_median": {
                        k: round(statistics.median(r[k] / r["naive"] for r in rounds), 2) for k in names[1:]
                    },
                    "speedup_vs_naive_per_round": {k: [round(r[k] / r["naive"], 2) for r in rounds] for k in names[1:]},
                }
                print(fmt, step_name, results[f"{fmt}/{step_name}"], flush=True)
    finally:
        await process.aclose()
        await thread.aclose()
    single = {}
    for fmt in FORMATS:
        single[fmt] = await single_legs(fmt, args.single, size, target, final)  # type: ignore[arg-type]
        print("single", fmt, single[fmt], flush=True)
    one_request = await request_legs("png", args.request_images, size, target, args.rounds)  # type: ignore[arg-type]
    print("one request", one_request, flush=True)
    write_result(
        "media",
        {
            "input_size": f"{size[0]}x{size[1]}",
            "model_ready_size": f"{final[0]}x{final[1]}",
            "processor_short_side": args.input_side,
            "images_per_format": args.images,
            "rounds": args.rounds,
            "concurrency": c,
            "results": results,
            "single_images": single,
            "one_request_png": one_request,
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
