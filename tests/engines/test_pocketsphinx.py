from __future__ import annotations

import numpy as np
import pytest

from mmserve.cards import ModelCard
from mmserve.engines.pocketsphinx_asr import PocketsphinxEngine
from mmserve.engines.types import Segment, TranscriptionInput
from mmserve.errors import InvalidRequestError, ModelCapabilityError
from tests.helpers.speech import speak

SENTENCES = ["hello world how are you today", "the weather is nice today and the sun is shining"]


@pytest.fixture(scope="module")
def engine() -> PocketsphinxEngine:
    card = ModelCard(id="asr", task="transcription", engine="pocketsphinx")
    e = PocketsphinxEngine(card, source=None, device="cpu")
    e.load()
    return e


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    pause = np.zeros(16000, np.float32)
    return np.concatenate([pause, speak(SENTENCES[0] + "."), pause, speak(SENTENCES[1] + "."), pause])


async def test_recognises_espeak_speech_with_timed_segments_and_words(
    engine: PocketsphinxEngine, speech: np.ndarray
) -> None:
    streamed: list[Segment] = []
    t = await engine.transcribe(TranscriptionInput(speech, word_timestamps=True), on_segment=streamed.append)
    words = t.text.split()
    assert len(set(words) & set(" ".join(SENTENCES).split())) >= 8, t.text
    assert t.language == "en" and t.duration == pytest.approx(len(speech) / 16000)
    assert len(t.segments) >= 2 and streamed == t.segments
    # the pause in the middle separates the sentences
    assert t.segments[0].end < 1 + len(speak(SENTENCES[0] + ".")) / 16000 + 0.6 < t.segments[-1].start + 1.5
    last = 0.0
    for i, seg in enumerate(t.segments):
        assert seg.id == i and last <= seg.start < seg.end <= t.duration
        assert seg.words and seg.words[0].start >= seg.start and seg.words[-1].end <= seg.end
        assert all(a.end <= b.start + 1e-6 for a, b in zip(seg.words, seg.words[1:], strict=False))
        assert seg.avg_logprob <= 0 and seg.compression_ratio > 0
        last = seg.end


async def test_silence_gives_an_empty_transcript(engine: PocketsphinxEngine) -> None:
    t = await engine.transcribe(TranscriptionInput(np.zeros(16000 * 2, np.float32)))
    assert t.text == "" and t.segments == []


async def test_a_tail_shorter_than_a_frame_is_decoded(engine: PocketsphinxEngine) -> None:
    audio = speak("one two three four five")
    for cut in (0, 7, 479):  # the endpointer's frame is 480 samples
        t = await engine.transcribe(TranscriptionInput(audio[: len(audio) - cut]))
        assert len(set(t.text.split()) & {"one", "two", "three", "four", "five"}) >= 3, t.text


async def test_long_speech_is_cut_into_bounded_utterances() -> None:
    card = ModelCard(id="asr", task="transcription", engine="pocketsphinx", options={"max_utterance_s": 2.0})
    e = PocketsphinxEngine(card, source=None, device="cpu")
    e.load()
    t = await e.transcribe(TranscriptionInput(speak("one two three four five six seven eight nine ten " * 2)))
    assert len({s.seek for s in t.segments}) >= 3  # several decoder passes
    assert [s.start for s in t.segments] == sorted(s.start for s in t.segments)


async def test_other_languages_and_translation_are_refused(engine: PocketsphinxEngine) -> None:
    audio = np.zeros(1600, np.float32)
    with pytest.raises(InvalidRequestError) as e:
        await engine.transcribe(TranscriptionInput(audio, language="fr"))
    assert e.value.param == "language"
    assert (await engine.transcribe(TranscriptionInput(audio, language="en-US"))).language == "en"
    with pytest.raises(ModelCapabilityError):
        await engine.transcribe(TranscriptionInput(audio, task="translate"))
