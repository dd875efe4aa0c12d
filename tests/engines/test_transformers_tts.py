from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.engines.transformers_tts import TransformersTTSEngine, split_text
from mmserve.engines.types import SpeechInput
from mmserve.errors import InvalidRequestError


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Iterator[TransformersTTSEngine]:
    source = build_demo_model("vits", models_dir)
    card = ModelCard(id="vits", task="speech", engine="transformers-tts", options={"seed": 0})
    e = TransformersTTSEngine(card, source=source, device="cpu")
    e.load()
    yield e
    e.unload()


async def _speak(engine: TransformersTTSEngine, text: str, **kw: object) -> list[np.ndarray]:
    return [c.samples async for c in engine.synthesize(SpeechInput(text, "alloy", **kw))]  # type: ignore[arg-type]


async def test_each_sentence_is_sent_when_ready(engine: TransformersTTSEngine) -> None:
    chunks = await _speak(engine, "Hello world. How are you today? Fine!")
    assert len(chunks) == 3 and engine.sample_rate == 16000
    audio = np.concatenate(chunks)
    assert audio.dtype == np.float32 and np.isfinite(audio).all() and np.abs(audio).max() > 0
    # ~0.1 s per character for the tiny model (its duration predictor's bias)
    assert 2.0 < len(audio) / 16000 < 6.0


async def test_speed_is_the_models_speaking_rate(engine: TransformersTTSEngine) -> None:
    normal = sum(map(len, await _speak(engine, "The weather is nice today.")))
    fast = sum(map(len, await _speak(engine, "The weather is nice today.", speed=2.0)))
    slow = sum(map(len, await _speak(engine, "The weather is nice today.", speed=0.5)))
    # VITS rounds each token's duration up to whole frames (3 -> 2 at speed 2, 3 -> 5 at speed 0.5)
    assert 1.4 < normal / fast <= 2.0 and 1.6 < slow / normal <= 2.0


async def test_seeded_output_is_reproducible(engine: TransformersTTSEngine) -> None:
    a = np.concatenate(await _speak(engine, "Same words."))
    b = np.concatenate(await _speak(engine, "Same words."))
    assert np.array_equal(a, b)


async def test_bad_voice_and_unspeakable_text_are_400(engine: TransformersTTSEngine) -> None:
    with pytest.raises(InvalidRequestError) as e:
        await _speak_voice(engine, "nobody")
    assert e.value.param == "voice"
    with pytest.raises(InvalidRequestError) as e:
        await _speak(engine, "日本語")
    assert e.value.param == "input"
    assert "default" in engine.voices() and "alloy" in engine.voices()


async def _speak_voice(engine: TransformersTTSEngine, voice: str) -> None:
    async for _ in engine.synthesize(SpeechInput("hello", voice)):
        pass


def test_split_text() -> None:
    assert split_text("One. Two!  Three?\nFour", 100) == ["One.", "Two!", "Three?", "Four"]
    long = "word " * 30
    parts = split_text(long, 40)
    assert all(len(p) <= 40 for p in parts) and " ".join(parts).split() == long.split()
    assert split_text("x" * 50, 20) == ["x" * 20, "x" * 20, "x" * 10]
