from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mmserve.cards import ModelCard
from mmserve.engines.common.voices import OPENAI_VOICES
from mmserve.engines.espeak.engine import ESPEAK_VOICES, EspeakEngine
from mmserve.engines.espeak.lib import LOCK, library
from mmserve.engines.types import SpeechInput
from mmserve.errors import InvalidRequestError

TEXT = "The weather is nice today and the sun is shining."


def _engine(**card: object) -> EspeakEngine:
    engine = EspeakEngine(ModelCard(id="tts", task="speech", engine="espeak-ng", **card), source=None, device="cpu")
    engine.load()
    return engine


@pytest.fixture(scope="module")
def engine() -> EspeakEngine:
    return _engine()


async def _speak(engine: EspeakEngine, text: str = TEXT, voice: str = "alloy", speed: float = 1.0) -> np.ndarray:
    chunks = [c async for c in engine.synthesize(SpeechInput(text, voice, speed))]
    assert all(c.sample_rate == library().sample_rate for c in chunks)
    return np.concatenate([c.samples for c in chunks])


def test_library_lists_voices_and_variants() -> None:
    lib = library()
    assert lib.sample_rate == 22050
    shorts = {v.short for v in lib.voices}
    assert {"en-us", "en-gb-x-rp", "fr", "de"} <= shorts
    assert {"klatt", "f3", "m3"} <= set(lib.variants)


def test_every_openai_voice_has_an_espeak_voice() -> None:
    assert set(ESPEAK_VOICES) == set(OPENAI_VOICES)


@pytest.mark.parametrize("voice", sorted(OPENAI_VOICES))
def test_every_openai_voice_maps_to_a_working_espeak_voice(engine: EspeakEngine, voice: str) -> None:
    spec = engine.resolve_voice(voice)
    with LOCK:
        assert library().set_voice(spec), spec
    assert engine.resolve_voice(voice.upper()) == spec


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("en-us", "en-us"),
        ("en-us+klatt", "en-us+klatt"),
        ("English (America)", "en-us"),
        ("gmw/en-US", "en-us"),
        ("fr", "fr"),
        ("de+f3", "de+f3"),
    ],
)
def test_espeak_names_work_too(engine: EspeakEngine, name: str, spec: str) -> None:
    assert engine.resolve_voice(name) == spec


@pytest.mark.parametrize("bad", ["nobody", "en-us+nope", "+klatt", ""])
def test_unknown_voice_is_400_naming_voice(engine: EspeakEngine, bad: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        engine.resolve_voice(bad)
    assert e.value.param == "voice" and "alloy" in e.value.message


def test_card_can_restrict_voices_and_remap_them() -> None:
    engine = _engine(capabilities={"voices": ["alloy", "robot"]}, options={"voice_map": {"robot": "en-us+klatt6"}})
    assert engine.voices() == ["alloy", "robot"]
    assert engine.resolve_voice("robot") == "en-us+klatt6"
    with pytest.raises(InvalidRequestError):
        engine.resolve_voice("nova")


async def test_audio_streams_in_chunks_at_speech_length(engine: EspeakEngine) -> None:
    chunks = [c async for c in engine.synthesize(SpeechInput(TEXT * 3, "nova"))]
    assert len(chunks) > 10  # ~100 ms each, sent as produced
    seconds = sum(len(c.samples) for c in chunks) / 22050
    assert 5 < seconds < 15  # ~50 words at 175 wpm
    audio = np.concatenate([c.samples for c in chunks])
    assert audio.dtype == np.float32 and 0.05 < np.abs(audio).max() <= 1.0


@pytest.mark.parametrize("speed", [0.25, 0.5, 2.0, 4.0])
async def test_speed_scales_duration(engine: EspeakEngine, speed: float) -> None:
    normal = len(await _speak(engine))
    changed = len(await _speak(engine, speed=speed))
    assert normal / changed == pytest.approx(speed, rel=0.25)  # 0.25 goes through the tempo filter


async def test_control_characters_do_not_cut_the_text(engine: EspeakEngine) -> None:
    full = len(await _speak(engine, "one two three four five six"))
    with_nul = len(await _speak(engine, "one two three\0 four five six"))
    assert with_nul == pytest.approx(full, rel=0.1)


async def test_closing_the_stream_early_stops_synthesis_and_frees_the_engine(engine: EspeakEngine) -> None:
    gen = engine.synthesize(SpeechInput(TEXT * 40, "alloy"))
    await anext(gen)
    await gen.aclose()
    audio = await asyncio.wait_for(_speak(engine, "still working"), 10)
    assert len(audio) > 0
