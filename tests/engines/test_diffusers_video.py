"""The diffusers video engine on the tiny Wan pipeline: frame counts, seeding, concurrency, i2v, progress."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.catalog.builders.video import build_tiny_wan
from mmserve.engines.diffusers_video import (
    DENOISE_SHARE,
    UPSCALE_FROM,
    DiffusersVideoEngine,
    DiffusersVideoOptions,
    pipeline_frames,
    render_size,
)
from mmserve.engines.types import VideoGenInput
from mmserve.errors import EngineError, InvalidRequestError


def _card(**options: object) -> ModelCard:
    return ModelCard(
        id="tiny-video",
        task="video-generation",
        engine="diffusers-video",
        source="demo:video",
        options={"steps": 2, "guidance_scale": 1.0, **options},
        capabilities={"image_to_video": True},
        deployment={"max_concurrency": 2},
    )


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Iterator[DiffusersVideoEngine]:
    eng = DiffusersVideoEngine(_card(), source=build_demo_model("video", models_dir), device="cpu")
    eng.load()
    yield eng
    eng.unload()


def _req(**kw: object) -> VideoGenInput:
    values: dict = dict(prompt="a cat on a red couch", width=64, height=48, num_frames=6, fps=8, seed=3)
    values.update(kw)
    return VideoGenInput(**values)


@pytest.mark.parametrize(("n", "m", "expected"), [(1, 4, 1), (2, 4, 5), (5, 4, 5), (64, 4, 65), (65, 4, 65), (8, 8, 9)])
def test_frames_round_up_to_the_pipeline_form(n: int, m: int, expected: int) -> None:
    assert pipeline_frames(n, m) == expected


def _clip(width: int, height: int, num_frames: int) -> VideoGenInput:
    return VideoGenInput(prompt="a clip", width=width, height=height, num_frames=num_frames, fps=8)


def test_check_request_names_the_field() -> None:
    opts = DiffusersVideoOptions(max_frames=33, max_pixels=64 * 64)
    DiffusersVideoEngine.check_request(opts, _clip(64, 48, 32))
    with pytest.raises(InvalidRequestError) as e:
        DiffusersVideoEngine.check_request(opts, _clip(60, 48, 8))
    assert e.value.param == "size" and "multiples of 16" in e.value.message
    with pytest.raises(InvalidRequestError) as e:
        DiffusersVideoEngine.check_request(opts, _clip(128, 128, 8))
    assert e.value.param == "size"
    with pytest.raises(InvalidRequestError) as e:
        DiffusersVideoEngine.check_request(opts, _clip(64, 48, 34))
    assert e.value.param == "seconds"
    # the default bound: 12 s at 30 fps passes, 12 s at 240 fps (the largest fps a request may name) does not
    DiffusersVideoEngine.check_request(DiffusersVideoOptions(), _clip(64, 48, 360))
    with pytest.raises(InvalidRequestError) as e:
        DiffusersVideoEngine.check_request(DiffusersVideoOptions(), _clip(64, 48, 12 * 240))
    assert e.value.param == "seconds" and "361" in e.value.message


async def test_exact_frames_size_and_dtype(engine: DiffusersVideoEngine) -> None:
    seen: list[float] = []
    out = await engine.generate(_req(num_frames=6), progress=seen.append)
    assert out.frames.shape == (6, 48, 64, 3) and out.frames.dtype == np.uint8 and out.fps == 8
    # two denoising steps, then the VAE decodes the 3 latent frames of 9 generated frames
    assert seen == pytest.approx([0.4, 0.8, 0.8 + 0.2 / 3, 0.8 + 0.4 / 3, 1.0])


async def test_seeded_and_reproducible_under_concurrency(engine: DiffusersVideoEngine) -> None:
    a = await engine.generate(_req(seed=3))
    b = await engine.generate(_req(seed=4, prompt="a dog"))
    assert not np.array_equal(a.frames, b.frames)
    again_a, again_b = await asyncio.gather(
        engine.generate(_req(seed=3)), engine.generate(_req(seed=4, prompt="a dog"))
    )
    assert np.array_equal(a.frames, again_a.frames) and np.array_equal(b.frames, again_b.frames)


async def test_parallel_calls_do_not_share_a_tokenizer(
    engine: DiffusersVideoEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a tokenizer keeps its padding settings on the object: parallel calls each need their own
    both_running = threading.Barrier(2, timeout=30)
    used: dict[int, object] = {}
    view = engine._view

    def spy(cls: object, vae: object) -> object:
        pipe = view(cls, vae)
        both_running.wait()
        used[threading.get_ident()] = pipe.tokenizer
        return pipe

    monkeypatch.setattr(engine, "_view", spy)
    await asyncio.gather(engine.generate(_req(num_frames=1)), engine.generate(_req(num_frames=1, seed=4)))
    a, b = used.values()
    assert a is not b and a is not engine.pipe.tokenizer and b is not engine.pipe.tokenizer


async def test_image_to_video_pins_the_first_frame(engine: DiffusersVideoEngine) -> None:
    red = Image.new("RGB", (200, 150), (255, 0, 0))
    blue = Image.new("RGB", (200, 150), (0, 0, 255))
    r = await engine.generate(_req(num_frames=5, image=red))
    b = await engine.generate(_req(num_frames=5, image=blue))
    assert r.frames.shape == (5, 48, 64, 3)
    # same seed and prompt: only the reference differs, and it changes the video
    assert not np.array_equal(r.frames[0], b.frames[0])


async def test_an_exception_from_progress_stops_the_generation_unchanged(engine: DiffusersVideoEngine) -> None:
    class Stop(Exception):
        pass

    calls: list[float] = []

    def stop(fraction: float) -> None:
        calls.append(fraction)
        raise Stop()

    with pytest.raises(Stop):
        await engine.generate(_req(), progress=stop)
    assert calls == [0.4]


async def test_a_model_failure_is_an_engine_error(tmp_path: Path) -> None:
    build_tiny_wan(tmp_path, rope_max_seq_len=2)  # too few positions for 5 latent frames: fails in the model
    eng = DiffusersVideoEngine(_card(), source=tmp_path, device="cpu")
    eng.load()
    try:
        with pytest.raises(EngineError) as e:
            await eng.generate(_req(num_frames=16))
        assert not e.value.public and e.value.code == "engine_error"
    finally:
        eng.unload()


@pytest.mark.parametrize(
    ("size", "cap", "expected"),
    [
        ((1280, 720), 65536, (336, 192)),
        ((720, 1280), 65536, (192, 336)),
        ((256, 256), 65536, (256, 256)),
        ((1280, 720), None, (1280, 720)),
        ((64, 1024), 4096, (16, 256)),
    ],
)
def test_render_size_keeps_the_aspect_under_the_cap(size: tuple, cap: int | None, expected: tuple) -> None:
    assert render_size(*size, cap, 16) == expected


def test_frames_rendered_small_are_upscaled_with_progress_through_the_decode(models_dir: Path) -> None:
    eng = DiffusersVideoEngine(
        _card(render_max_pixels=64 * 48), source=build_demo_model("video", models_dir), device="cpu"
    )
    eng.load()
    try:
        seen: list[float] = []
        out = asyncio.run(eng.generate(_req(width=256, height=192, num_frames=9), progress=seen.append))
    finally:
        eng.unload()
    assert out.frames.shape == (9, 192, 256, 3) and out.frames.dtype == np.uint8
    assert seen == sorted(seen) and seen[-1] == 1.0
    after_denoising = [f for f in seen if DENOISE_SHARE < f < UPSCALE_FROM]
    assert len(after_denoising) >= 2  # the VAE decode, latent frame by latent frame (9 frames: 3 latent)
    assert any(UPSCALE_FROM < f < 1.0 for f in seen)  # the upscaling
    # upscaled from a smaller render: neighbouring pixels are smooth compared with noise at full size
    small = asyncio.run(_native(models_dir))
    assert np.abs(np.diff(out.frames.astype(int), axis=2)).mean() < np.abs(np.diff(small.astype(int), axis=2)).mean()


async def _native(models_dir: Path) -> np.ndarray:
    eng = DiffusersVideoEngine(_card(), source=build_demo_model("video", models_dir), device="cpu")
    eng.load()
    try:
        return (await eng.generate(_req(width=256, height=192, num_frames=9))).frames
    finally:
        eng.unload()
