from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.engines.types import Segment, TranscriptionInput
from mmserve.engines.whisper.engine import WhisperEngine
from mmserve.errors import InvalidRequestError
from tests.helpers.speech import speak
from tests.helpers.whisper import force_script

NOISE = np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32) * 0.05
SPEECH = np.concatenate([speak("hello world, how are you?"), np.zeros(16000 * 2, np.float32)])


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Iterator[WhisperEngine]:
    source = build_demo_model("whisper", models_dir)
    card = ModelCard(id="w", task="transcription", engine="whisper", options={"max_new_tokens": 24})
    e = WhisperEngine(card, source=source, device="cpu")
    e.load()
    yield e
    e.unload()


@pytest.fixture
def scripted(engine: WhisperEngine) -> Iterator[WhisperEngine]:
    force_script(engine)
    yield engine
    engine.extra_logits_processors = []


def test_tiny_model_has_whisper_layout(engine: WhisperEngine) -> None:
    tok = engine.processor.tokenizer
    assert engine._ts_begin == tok.convert_tokens_to_ids("<|0.00|>")
    assert tok.convert_tokens_to_ids("<|30.00|>") == engine._ts_begin + 1500
    assert engine._multilingual and "en" in engine._languages and "de" in engine._languages
    assert engine.model.generation_config.alignment_heads


async def test_segments_and_words_from_real_timestamp_decoding(scripted: WhisperEngine) -> None:
    streamed: list[Segment] = []
    t = await scripted.transcribe(
        TranscriptionInput(SPEECH, language="en", word_timestamps=True),
        on_segment=streamed.append,
    )
    assert t.text == "Hello world. How are you?" and t.language == "en"
    assert [(s.start, s.end, s.text) for s in t.segments] == [(0.0, 1.0, "Hello world."), (1.2, 2.4, "How are you?")]
    assert streamed == t.segments
    words = [w for s in t.segments for w in s.words]
    assert [w.word for w in words] == ["Hello", "world.", "How", "are", "you?"]
    for s in t.segments:
        assert all(s.start <= w.start <= w.end <= s.end for w in s.words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    seg = t.segments[0]
    assert seg.tokens[0] == scripted._ts_begin and seg.avg_logprob == pytest.approx(0.0)  # forced: p = 1
    assert 0.0 <= seg.no_speech_prob <= 1.0 and seg.compression_ratio > 0


async def test_long_audio_is_decoded_in_30s_windows(scripted: WhisperEngine) -> None:
    audio = np.tile(NOISE, 12)  # 36 s: two windows, one batch
    t = await scripted.transcribe(TranscriptionInput(audio, language="en"))
    assert [(s.start, s.end) for s in t.segments] == [(0.0, 1.0), (1.2, 2.4), (30.0, 31.0), (31.2, 32.4)]
    assert [s.seek for s in t.segments] == [0, 0, 3000, 3000] and [s.id for s in t.segments] == [0, 1, 2, 3]
    assert t.duration == pytest.approx(36.0)


async def test_free_decoding_detects_a_language_and_stays_bounded(engine: WhisperEngine) -> None:
    t = await engine.transcribe(TranscriptionInput(NOISE, prompt="Hello there.", temperature=0.7))
    assert t.language in engine._languages
    assert all(len(s.tokens) <= 24 for s in t.segments)


async def test_translation_and_language_checks(scripted: WhisperEngine) -> None:
    t = await scripted.transcribe(TranscriptionInput(NOISE, language="de", task="translate"))
    assert t.text == "Hello world. How are you?" and t.language == "de"
    with pytest.raises(InvalidRequestError) as e:
        await scripted.transcribe(TranscriptionInput(NOISE, language="klingon"))
    assert e.value.param == "language"


def test_long_prompts_keep_their_end(engine: WhisperEngine) -> None:
    ids = engine._prompt_ids("word " * 1000)
    assert ids.shape[-1] == engine.options.max_prompt_tokens + 1
    assert ids[0].item() == engine.processor.tokenizer.convert_tokens_to_ids("<|startofprev|>")
    assert engine._prompt_ids("  ") is None


async def test_windows_of_concurrent_requests_decode_in_one_batch(engine: WhisperEngine) -> None:
    rng = np.random.default_rng(1)
    requests = [
        TranscriptionInput(rng.standard_normal(16000 * 45).astype(np.float32) * 0.1, language="en"),  # 2 windows
        TranscriptionInput(SPEECH, language="en", word_timestamps=False),
        TranscriptionInput(rng.standard_normal(16000 * 10).astype(np.float32) * 0.1, language="en"),
    ]
    alone = [await engine.transcribe(r) for r in requests]
    assert engine._batcher is not None
    before = engine._batcher.batches
    # a request of another key keeps the worker busy while the three queue up: their 4 windows go together
    busy = asyncio.create_task(engine.transcribe(TranscriptionInput(np.tile(NOISE, 30), language="de")))
    await asyncio.sleep(0.05)
    together = await asyncio.gather(*(engine.transcribe(r) for r in requests))
    await busy
    assert engine._batcher.largest == 4  # no request has 4 windows: the 4 came from three requests
    assert engine._batcher.batches - before == 2
    for a, b in zip(alone, together, strict=True):
        assert a.text == b.text and a.language == b.language
        assert [(s.start, s.end, s.text, s.tokens) for s in a.segments] == [
            (s.start, s.end, s.text, s.tokens) for s in b.segments
        ]
