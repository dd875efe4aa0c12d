"""The transformers embedding engine on the tiny text encoder and tiny CLIP: pooling, limits, images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.engines.transformers_embedding import TransformersEmbeddingEngine
from mmserve.engines.types import EmbeddingInput, EmbeddingItem
from mmserve.errors import ContextLengthError, InvalidRequestError


def _engine(source: Path, **options: object) -> TransformersEmbeddingEngine:
    card = ModelCard(id="e", task="embedding", engine="transformers-embedding", options=options)
    engine = TransformersEmbeddingEngine(card, source=source, device="cpu")
    engine.load()
    return engine


async def _vectors(engine: TransformersEmbeddingEngine, *items: EmbeddingItem, dims: int | None = None) -> np.ndarray:
    return (await engine.embed(EmbeddingInput(list(items), dims))).vectors


async def test_pooling_modes_differ_and_auto_reads_sentence_transformers(models_dir: Path, tmp_path: Path) -> None:
    source = build_demo_model("embed-text", models_dir)
    text = EmbeddingItem(text="The cat sits on a red couch")
    mean, cls, last = [await _vectors(_engine(source, pooling=p), text) for p in ("mean", "cls", "last")]
    assert not np.allclose(mean, cls, atol=1e-3) and not np.allclose(cls, last, atol=1e-3)
    st = tmp_path / "st-export"
    shutil.copytree(source, st)
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    auto = _engine(st)
    assert auto.pooling == "cls" and np.allclose(await _vectors(auto, text), cls, atol=1e-6)
    assert _engine(source).pooling == "mean"  # no sentence-transformers config


async def test_normalize_off_keeps_the_raw_pooled_vector(models_dir: Path) -> None:
    source = build_demo_model("embed-text", models_dir)
    raw = await _vectors(_engine(source, normalize=False), EmbeddingItem(text="hello"))
    unit = await _vectors(_engine(source), EmbeddingItem(text="hello"))
    assert abs(np.linalg.norm(raw[0]) - 1) > 1e-3
    assert np.allclose(raw[0] / np.linalg.norm(raw[0]), unit[0], atol=1e-6)


async def test_padding_in_a_batch_does_not_change_a_vector(models_dir: Path) -> None:
    engine = _engine(build_demo_model("embed-text", models_dir), pooling="last", batch_size=2)
    short, long = EmbeddingItem(text="Hi"), EmbeddingItem(text="Mountains, rivers and a sunset over the sea.")
    together = await _vectors(engine, long, short, long)
    assert np.allclose(together[1], (await _vectors(engine, short))[0], atol=1e-5)
    assert np.allclose(together[0], together[2], atol=1e-6)


async def test_limits_are_refused_not_truncated(models_dir: Path) -> None:
    engine = _engine(build_demo_model("embed-text", models_dir), max_length=8)
    with pytest.raises(ContextLengthError) as e:
        await engine.embed(EmbeddingInput([EmbeddingItem(text="word " * 20, param="input[0]")]))
    assert e.value.param == "input[0]" and "at most 8 tokens" in e.value.message
    with pytest.raises(InvalidRequestError, match="embeds text only"):
        await engine.embed(EmbeddingInput([EmbeddingItem(image=Image.new("RGB", (32, 32)), param="input[0].image")]))


async def test_clip_text_and_images_share_a_space_of_the_projection_size(models_dir: Path) -> None:
    engine = _engine(build_demo_model("clip", models_dir))
    assert engine.dual and engine.dimensions() == 32 and engine.max_length == 77
    assert engine.image_input_size() is not None  # images are downscaled to the processor's 56 px first
    out = await engine.embed(
        EmbeddingInput(
            [EmbeddingItem(text="a red square"), EmbeddingItem(image=Image.new("RGB", (90, 60), (200, 0, 0)))],
            dimensions=8,
        )
    )
    tokens = engine.tokenizer("a red square", add_special_tokens=False)["input_ids"]
    assert out.vectors.shape == (2, 8) and out.images == 1 and out.text_tokens == len(tokens) + 2  # + begin, end
    assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1, atol=1e-5)
