"""The diffusers image engine on the tiny demo pipeline: seeds, batches, progress, edits, cancellation."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.engines.diffusers_image import engine as diffusers_image
from mmserve.engines.diffusers_image.engine import DiffusersImageEngine
from mmserve.engines.diffusers_image.options import concurrency_defaults
from mmserve.engines.types import ImageGenInput, ImageGenOutput
from mmserve.errors import EngineUnavailableError, InvalidRequestError, ModelCapabilityError
from tests.helpers.image_checks import same_up_to_batch_numerics

# batching and parallel calls both on (a CPU's defaults would not batch: see test_cpu_defaults_...)
OPTIONS = {
    "quality_steps": {"low": 1, "medium": 2, "high": 4},
    "guidance_scale": 5.0,
    "parallel_generations": 2,
    "max_batch_images": 4,
}


def _card(**over: object) -> ModelCard:
    raw = {
        "id": "tiny-image",
        "task": "image-generation",
        "engine": "diffusers-image",
        "source": "demo:image",
        "options": OPTIONS,
        "capabilities": {"edits": True},
        **over,
    }
    return ModelCard.model_validate(raw)


@pytest.fixture(scope="module")
def source(models_dir: Path) -> Path:
    return build_demo_model("image", models_dir)


@pytest.fixture(scope="module")
def engine(source: Path) -> Iterator[DiffusersImageEngine]:
    eng = DiffusersImageEngine(_card(), source=source, device="cpu")
    eng.load()
    yield eng
    eng.unload()


def _arrays(images: list[Image.Image]) -> list[np.ndarray]:
    return [np.asarray(im) for im in images]


def _same_images(a: list[Image.Image], b: list[Image.Image]) -> bool:
    return all(same_up_to_batch_numerics(x, y) for x, y in zip(a, b, strict=True))


def test_batch_of_n_with_per_image_seeds(engine: DiffusersImageEngine) -> None:
    out = asyncio.run(engine.generate(ImageGenInput(prompt="a cat", n=3, width=128, height=96, seed=7)))
    assert [im.size for im in out.images] == [(128, 96)] * 3
    assert out.seed == 7 and out.steps == 2 and out.quality == "medium"
    assert out.prompt_tokens == 4  # <start> a cat <end>
    a, b, c = _arrays(out.images)
    assert not np.array_equal(a, b) and not np.array_equal(b, c)
    # image i comes from seed + i: the second image of the batch is (up to batch numerics) seed 8's first
    alone = asyncio.run(engine.generate(ImageGenInput(prompt="a cat", n=1, width=128, height=96, seed=8)))
    assert np.abs(b.astype(int) - _arrays(alone.images)[0].astype(int)).max() <= 2


def test_concurrent_seeded_requests_are_reproducible(engine: DiffusersImageEngine) -> None:
    async def main() -> list[list[np.ndarray]]:
        reqs = [ImageGenInput(prompt="a boat", n=2, width=128, height=128, seed=s) for s in (1, 2, 1, 2)]
        outs = await asyncio.gather(*(engine.generate(r) for r in reqs))
        return [_arrays(o.images) for o in outs]

    r = asyncio.run(main())
    assert all(np.array_equal(x, y) for x, y in zip(r[0], r[2], strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(r[1], r[3], strict=True))
    assert not np.array_equal(r[0][0], r[1][0])
    # no global seed was touched: an unseeded request draws its own
    unseeded = asyncio.run(engine.generate(ImageGenInput(prompt="a boat", width=128, height=128)))
    assert unseeded.seed is not None


def test_parallel_generations_do_not_share_a_tokenizer(
    engine: DiffusersImageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a tokenizer keeps its padding settings on the object, and a pipeline encodes with two of them:
    # two threads sharing one got each other's padding (another image, or a failed concatenation)
    both_running = threading.Barrier(2, timeout=30)
    used: dict[int, object] = {}
    count_tokens = diffusers_image.prompt_tokens

    def spy(pipe: object, prompt: str) -> int:
        both_running.wait()  # the two calls run at the same time, in two worker threads
        used[threading.get_ident()] = pipe.tokenizer  # type: ignore[attr-defined]
        return count_tokens(pipe, prompt)

    monkeypatch.setattr(diffusers_image, "prompt_tokens", spy)

    async def main() -> None:
        # two sizes: requests of one size would share a pipeline call instead
        reqs = [ImageGenInput(prompt="a cat", width=64, height=h, steps=1, seed=1) for h in (64, 72)]
        await asyncio.gather(*(engine.generate(r) for r in reqs))

    asyncio.run(main())
    shared = engine._pipes["text"].tokenizer
    a, b = used.values()
    assert a is not b and a is not shared and b is not shared


def test_progress_is_reported_on_the_event_loop(engine: DiffusersImageEngine) -> None:
    seen: list[tuple[float, bool]] = []

    async def main() -> None:
        loop_thread = threading.get_ident()
        await engine.generate(
            ImageGenInput(prompt="x", width=64, height=64, steps=3, seed=1),
            lambda f: seen.append((f, threading.get_ident() == loop_thread)),
        )
        await asyncio.sleep(0)  # let the last call_soon_threadsafe run

    asyncio.run(main())
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and len(fractions) == 5
    assert fractions == sorted(fractions)
    assert all(on_loop for _, on_loop in seen)


def test_quality_and_steps(engine: DiffusersImageEngine) -> None:
    def run(**kw: object) -> tuple[int, str | None]:
        out = asyncio.run(engine.generate(ImageGenInput(prompt="x", width=64, height=64, seed=1, **kw)))  # type: ignore[arg-type]
        return out.steps, out.quality

    assert run(quality="low") == (1, "low")
    assert run(quality="high") == (4, "high")
    assert run(quality=None) == (2, "medium")
    assert run(steps=3, quality="high") == (3, None)
    with pytest.raises(InvalidRequestError) as e:
        run(steps=151)
    assert e.value.param == "steps"


def test_size_must_be_a_multiple_of_the_vae_factor(engine: DiffusersImageEngine) -> None:
    assert engine.size_multiple == 8
    with pytest.raises(InvalidRequestError) as e:
        asyncio.run(engine.generate(ImageGenInput(prompt="x", width=100, height=64)))
    assert e.value.param == "size" and "104x64" in e.value.message


def test_image_to_image_resizes_to_the_requested_size(engine: DiffusersImageEngine) -> None:
    src = Image.new("RGB", (300, 200), (200, 30, 30))
    out = asyncio.run(
        engine.generate(ImageGenInput(prompt="x", width=192, height=128, seed=3, images=[src], strength=0.3))
    )
    assert out.images[0].size == (192, 128)
    assert out.steps == 4  # strength 0.3 of 2 steps would run none: raised to ceil(1 / 0.3)


@pytest.mark.parametrize("strength", [1e-300, 5e-324, 1e-9, 0.005])
def test_a_strength_too_small_for_one_step_is_refused(engine: DiffusersImageEngine, strength: float) -> None:
    # ceil(1 / strength) steps would be needed: a scheduler table of 10^300 entries (a 500), or of 10^9
    src = Image.new("RGB", (64, 64))
    with pytest.raises(InvalidRequestError) as e:
        asyncio.run(engine.generate(ImageGenInput(prompt="x", width=64, height=64, images=[src], strength=strength)))
    assert e.value.param == "strength" and "0.00667" in e.value.message  # 1 / max_steps (150)
    out = asyncio.run(engine.generate(ImageGenInput(prompt="x", width=64, height=64, images=[src], strength=0.01)))
    assert out.steps == 100


def test_inpainting_keeps_pixels_outside_the_mask(engine: DiffusersImageEngine) -> None:
    src = Image.new("RGB", (128, 128), (10, 200, 40))
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, (32, 32, 96, 96))
    out = asyncio.run(
        engine.generate(ImageGenInput(prompt="x", n=2, width=128, height=128, seed=3, images=[src], mask=mask))
    )
    keep = np.asarray(mask) < 128
    for arr in _arrays(out.images):
        assert np.array_equal(arr[keep], np.asarray(src)[keep])
        assert not np.array_equal(arr[~keep], np.asarray(src)[~keep])


def test_edit_checks(engine: DiffusersImageEngine, source: Path) -> None:
    img = Image.new("RGB", (64, 64))
    with pytest.raises(InvalidRequestError) as e:
        asyncio.run(engine.generate(ImageGenInput(prompt="x", width=64, height=64, images=[img, img])))
    assert e.value.param == "image"
    with pytest.raises(InvalidRequestError) as e:
        bad_mask = Image.new("L", (32, 32))
        asyncio.run(engine.generate(ImageGenInput(prompt="x", width=64, height=64, images=[img], mask=bad_mask)))
    assert e.value.param == "mask"
    text_only = DiffusersImageEngine(_card(capabilities={"edits": False}), source=source, device="cpu")
    text_only.load()
    with pytest.raises(ModelCapabilityError):
        asyncio.run(text_only.generate(ImageGenInput(prompt="x", width=64, height=64, images=[img])))


def test_cancelled_request_stops_at_the_next_step(source: Path) -> None:
    card = _card(options={**OPTIONS, "parallel_generations": 1})
    one_worker = DiffusersImageEngine(card, source=source, device="cpu")
    one_worker.load()
    seen: list[float] = []

    async def main() -> None:
        task = asyncio.create_task(
            one_worker.generate(ImageGenInput(prompt="x", width=256, height=256, steps=150, seed=1), seen.append)
        )
        while not seen or seen[-1] == 0.0:  # wait until denoising has started
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the single worker runs this only after the cancelled call returned
        await one_worker.generate(ImageGenInput(prompt="y", width=64, height=64))
        await asyncio.sleep(0)

    asyncio.run(main())
    assert 0 < seen[-1] < 0.5  # stopped long before its 150 steps were done
    one_worker.unload()


def test_named_pipeline_classes_and_bad_names(source: Path) -> None:
    card = _card(
        options={
            **OPTIONS,
            "pipeline": "StableDiffusionPipeline",
            "image_to_image_pipeline": "StableDiffusionImg2ImgPipeline",
            "scheduler": "DDIMScheduler",
        }
    )
    eng = DiffusersImageEngine(card, source=source, device="cpu")
    eng.load()
    assert type(eng._pipes["image"]).__name__ == "StableDiffusionImg2ImgPipeline"
    assert type(eng._pipes["text"].scheduler).__name__ == "DDIMScheduler"
    out = asyncio.run(eng.generate(ImageGenInput(prompt="x", width=64, height=64, seed=1)))
    assert out.images[0].size == (64, 64)
    with pytest.raises(EngineUnavailableError, match="NoSuchPipeline"):
        DiffusersImageEngine(_card(options={"pipeline": "NoSuchPipeline"}), source=source, device="cpu").load()


def test_bad_options_fail_at_catalog_load() -> None:
    from mmserve.catalog.loader import CatalogError, parse_catalog

    text = """
models:
  - id: img
    task: image-generation
    engine: diffusers-image
    source: demo:image
    options: {quality_steps: {low: 0}}
"""
    with pytest.raises(CatalogError) as e:
        parse_catalog(text, file="c.yaml", base_dir=Path("."))
    assert e.value.model == "img" and e.value.field == "options.quality_steps.low"
    with pytest.raises(CatalogError) as e:
        parse_catalog(text.replace("{quality_steps: {low: 0}}", "{stepz: 3}"), file="c.yaml", base_dir=Path("."))
    assert e.value.field == "options.stepz"


@pytest.fixture(scope="module")
def one_worker(source: Path) -> Iterator[DiffusersImageEngine]:
    eng = DiffusersImageEngine(_card(options={**OPTIONS, "parallel_generations": 1}), source=source, device="cpu")
    eng.load()
    yield eng
    eng.unload()


BATCHABLE = [
    ImageGenInput(prompt="a red boat", width=128, height=96, seed=3),
    ImageGenInput(prompt="a green field", n=2, width=128, height=96, seed=40, negative_prompt=None),
    ImageGenInput(prompt="a cat", width=128, height=96, seed=7),
]


async def _behind_a_busy_worker(engine: DiffusersImageEngine, requests: list[ImageGenInput]) -> list[ImageGenOutput]:
    """Start a slow call, then the requests: they queue up while the only worker is busy."""
    busy = asyncio.create_task(engine.generate(ImageGenInput(prompt="slow", width=256, height=256, steps=8, seed=1)))
    await asyncio.sleep(0.05)
    outs = await asyncio.gather(*(engine.generate(r) for r in requests))
    await busy
    return list(outs)


def test_concurrent_requests_of_one_size_share_a_call_and_keep_their_seeds(one_worker: DiffusersImageEngine) -> None:
    alone = [asyncio.run(one_worker.generate(r)) for r in BATCHABLE]
    assert one_worker._batcher is not None and one_worker._batcher.largest == 1
    together = asyncio.run(_behind_a_busy_worker(one_worker, BATCHABLE))
    assert one_worker._batcher.largest == 3  # the three requests (4 images) in one pipeline call
    for a, b in zip(alone, together, strict=True):
        assert (a.seed, a.steps, a.prompt_tokens) == (b.seed, b.steps, b.prompt_tokens)
        assert len(a.images) == len(b.images)
        assert _same_images(a.images, b.images)
    assert not _same_images(alone[0].images, together[2].images)  # another seed is another image


def test_requests_that_differ_are_not_batched(one_worker: DiffusersImageEngine) -> None:
    assert one_worker._batcher is not None
    before = one_worker._batcher.batches
    mixed = [
        ImageGenInput(prompt="a", width=128, height=96, seed=1),
        ImageGenInput(prompt="b", width=96, height=128, seed=1),  # another size
        ImageGenInput(prompt="c", width=128, height=96, seed=1, steps=3),  # other steps
        ImageGenInput(prompt="d", width=128, height=96, seed=1, guidance_scale=1.0),  # other guidance
        ImageGenInput(prompt="e", width=128, height=96, seed=1, n=4),  # one call's worth alone (max_batch_images 4)
    ]
    outs = asyncio.run(_behind_a_busy_worker(one_worker, mixed))
    assert [o.images[0].size for o in outs] == [(128, 96), (96, 128), (128, 96), (128, 96), (128, 96)]
    assert one_worker._batcher.batches - before == 6  # the busy call, then each request in its own


def test_a_cancelled_request_leaves_the_others_of_its_call_alone(one_worker: DiffusersImageEngine) -> None:
    alone = [asyncio.run(one_worker.generate(r)) for r in (BATCHABLE[0], BATCHABLE[2])]

    async def main() -> list[ImageGenOutput]:
        busy = asyncio.create_task(one_worker.generate(ImageGenInput(prompt="s", width=256, height=256, steps=8)))
        await asyncio.sleep(0.05)
        started: list[float] = []
        tasks = [asyncio.create_task(one_worker.generate(r, started.append)) for r in BATCHABLE]
        while not started:  # the call with the three requests has begun
            await asyncio.sleep(0.005)
        tasks[1].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[1]
        await busy
        return [await tasks[0], await tasks[2]]

    for a, b in zip(alone, asyncio.run(main()), strict=True):
        assert _same_images(a.images, b.images)


def test_previews_decoded_from_intermediate_latents(engine: DiffusersImageEngine) -> None:
    previews: list[tuple[int, list]] = []

    async def run() -> object:
        return await engine.generate(
            ImageGenInput(prompt="a cat", n=2, width=128, height=96, seed=4, steps=4, partial_images=2),
            preview=lambda i, images: previews.append((i, images)),
        )

    out = asyncio.run(run())
    assert [i for i, _ in previews] == [0, 1]
    for _, images in previews:
        assert len(images) == 2 and all(im.size == (128, 96) for im in images)
    first, last = (np.asarray(previews[k][1][0], dtype=float) for k in (0, 1))
    final = np.asarray(out.images[0], dtype=float)  # type: ignore[attr-defined]
    assert not np.array_equal(first, last)  # decoded from different steps
    assert not np.array_equal(last, final)


@pytest.mark.parametrize(
    ("device", "cores", "threads", "expected"),
    [
        ("cuda", 32, 32, (4, 1)),  # a GPU: batches, one call at a time
        ("cuda:1", 2, 1, (4, 1)),
        ("cpu", 2, 1, (1, 2)),  # the demo server on 2 cores: a call per core
        ("cpu", 16, 4, (1, 4)),  # four teams of four threads
        ("cpu", 2, 2, (1, 1)),  # one team takes both cores
        ("cpu", 1, 4, (1, 1)),  # never less than one worker
    ],
)
def test_concurrency_defaults_by_device(device: str, cores: int, threads: int, expected: tuple[int, int]) -> None:
    assert concurrency_defaults(device, cores, threads) == expected


def test_cpu_defaults_run_concurrent_requests_side_by_side_not_batched(source: Path) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server sets it for a catalog of several torch models
    options = {k: v for k, v in OPTIONS.items() if k not in ("parallel_generations", "max_batch_images")}
    eng = DiffusersImageEngine(_card(options=options), source=source, device="cpu")
    try:
        eng.load()
        assert eng._batcher is not None
        assert (eng._batcher.limit, eng._batcher.workers) == (1, max(1, len(os.sched_getaffinity(0))))
        alone = [asyncio.run(eng.generate(r)) for r in BATCHABLE]
        before_batches = eng._batcher.batches
        together = asyncio.run(_behind_a_busy_worker(eng, BATCHABLE))
        assert eng._batcher.largest == 1  # each request in a call of its own
        assert eng._batcher.batches - before_batches == 5  # the busy call, and a call per image (4)
        for a, b in zip(alone, together, strict=True):
            assert a.seed == b.seed and _same_images(a.images, b.images)
    finally:
        eng.unload()
        torch.set_num_threads(before)
    # a card's own settings win on a CPU too
    batching = DiffusersImageEngine(
        _card(options={**options, "max_batch_images": 4, "parallel_generations": 1}), source=source, device="cpu"
    )
    batching.load()
    try:
        assert batching._batcher is not None and (batching._batcher.limit, batching._batcher.workers) == (4, 1)
    finally:
        batching.unload()


@pytest.fixture(scope="module")
def side_by_side(source: Path) -> Iterator[DiffusersImageEngine]:
    """A CPU's defaults on a 2-core machine, set explicitly: no batching, two calls at once."""
    options = {**OPTIONS, "max_batch_images": 1, "parallel_generations": 2}
    eng = DiffusersImageEngine(_card(options=options), source=source, device="cpu")
    eng.load()
    yield eng
    eng.unload()


def test_an_n_image_request_runs_its_images_side_by_side(
    side_by_side: DiffusersImageEngine, one_worker: DiffusersImageEngine
) -> None:
    request = ImageGenInput(prompt="a red boat", n=3, width=128, height=96, seed=11)
    in_one_call = asyncio.run(one_worker.generate(request))  # max_batch_images 4: one call of three
    assert side_by_side._batcher is not None
    before = side_by_side._batcher.batches
    seen: list[float] = []
    split = asyncio.run(side_by_side.generate(request, seen.append))
    assert side_by_side._batcher.batches - before == 3 and side_by_side._batcher.largest == 1
    assert (split.seed, split.steps, split.quality, split.prompt_tokens) == (11, 2, "medium", in_one_call.prompt_tokens)
    assert _same_images(split.images, in_one_call.images)  # image i from seed + i, in order
    assert seen == sorted(seen) and seen[-1] == 1.0  # the parts' mean: it never goes back
    unseeded = asyncio.run(side_by_side.generate(replace(request, seed=None)))
    assert unseeded.seed is not None and len(unseeded.images) == 3
    again = asyncio.run(side_by_side.generate(replace(request, seed=unseeded.seed)))
    assert _same_images(again.images, unseeded.images)  # the reported seed makes the same images


def test_a_cancelled_n_image_request_stops_all_its_calls(
    side_by_side: DiffusersImageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    batcher = side_by_side._batcher
    assert batcher is not None
    jobs: list[diffusers_image._Job] = []
    submit = batcher.submit
    monkeypatch.setattr(batcher, "submit", lambda job: (jobs.append(job), submit(job))[1])
    seen: list[float] = []

    async def main() -> None:
        task = asyncio.create_task(
            side_by_side.generate(ImageGenInput(prompt="x", n=4, width=256, height=256, steps=150, seed=1), seen.append)
        )
        while not seen or seen[-1] == 0.0:  # denoising has started
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await side_by_side.generate(ImageGenInput(prompt="y", width=64, height=64))  # the workers are free again

    asyncio.run(main())
    assert len(jobs) == 5 and all(job.cancelled.is_set() for job in jobs[:4])  # every part, running or waiting
    assert 0 < seen[-1] < 0.5  # stopped long before any part's 150 steps were done
