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
from mmserve.engines.diffusers_video import DiffusersVideoEngine, DiffusersVideoOptions, pipeline_frames
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
    assert seen == [0.5, 1.0]


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
    assert calls == [0.5]


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
