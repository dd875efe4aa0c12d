"""Transcription cards on a third-party provider through the openai SDK against `mmserve serve`: the audio
mmserve bounded is what the provider hears, its segments and words, its billed seconds, fallback both ways."""

from __future__ import annotations

import math
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.helpers.audio import encode, tone
from tests.helpers.fake_provider import FakeProvider
from tests.helpers.process import ServerProcess
from tests.helpers.upstream import usage_of

SECONDS = 2.5


@pytest.fixture(scope="module")
def client(upstream_server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=upstream_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def mp3() -> bytes:
    return encode(tone(SECONDS, rate=44100), 44100, "mp3", channels=2)


def test_the_provider_hears_mmserves_bounded_audio_and_its_transcript_comes_back(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess, mp3: bytes
) -> None:
    before = usage_of(upstream_server.url, "remote-asr", 0)
    r: Any = client.audio.transcriptions.create(
        model="remote-asr",
        file=("speech.mp3", mp3, "audio/mpeg"),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
        prompt="a greeting",
    )
    sent = upstream.requests[-1]
    assert sent["model"] == "their-asr" and sent["response_format"] == "verbose_json"
    assert sent["language"] == "en" and sent["prompt"] == "a greeting"
    assert sorted(sent["granularities"]) == ["segment", "word"]
    rate, channels, width, duration = sent["wav"]
    assert (rate, channels, width) == (16000, 1, 2)  # decoded and bounded by mmserve, not the client's stereo MP3
    assert duration == pytest.approx(SECONDS, abs=0.1)
    assert r.text == "hello from the provider" and r.language == "english"
    assert [s.text for s in r.segments] == ["hello from", "the provider"]
    assert [w.word for w in r.words] == ["hello", "from", "the", "provider"]
    billed = math.ceil(duration)  # whisper-1 bills whole seconds: what the fake reported
    assert r.usage.type == "duration" and r.usage.seconds == billed
    after = usage_of(upstream_server.url, "remote-asr", before["requests"] + 1)
    assert after["audio_seconds"] - before["audio_seconds"] == billed
    assert after["cost"] - before["cost"] == pytest.approx(billed * 0.0001)


def test_translation_and_plain_json_providers(client: OpenAI, upstream: FakeProvider, mp3: bytes) -> None:
    r = client.audio.translations.create(model="remote-asr", file=("speech.mp3", mp3, "audio/mpeg"))
    assert r.text == "hello from the provider"
    assert upstream.hits[-1][1] == "/v1/audio/translations" and "language" not in upstream.requests[-1]
    text = client.audio.transcriptions.create(
        model="remote-asr-json", file=("speech.mp3", mp3, "audio/mpeg"), response_format="text"
    )
    assert upstream.requests[-1]["response_format"] == "json" and str(text).strip() == "hello from the provider"


def test_a_card_that_does_not_translate_is_refused_before_the_provider(
    client: OpenAI, upstream: FakeProvider, mp3: bytes
) -> None:
    sent = len(upstream.requests)
    with pytest.raises(openai.BadRequestError):
        client.audio.translations.create(model="remote-asr-json", file=("speech.mp3", mp3, "audio/mpeg"))
    assert len(upstream.requests) == sent


def test_a_failing_provider_falls_back_to_the_local_recogniser(
    client: OpenAI, upstream: FakeProvider, mp3: bytes
) -> None:
    upstream.fail_next(502, path="/v1/audio", times=2)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="asr-remote-first", file=("speech.mp3", mp3, "audio/mpeg")
    )
    assert raw.headers["x-mmserve-model"] == "local-asr"
    assert "fell back from remote-asr (upstream_error)" in raw.headers["x-mmserve-route"]


def test_a_broken_local_recogniser_falls_back_to_the_provider(
    client: OpenAI, upstream: FakeProvider, mp3: bytes
) -> None:
    upstream.transcript_text = "served remotely"
    raw = client.audio.transcriptions.with_raw_response.create(
        model="asr-local-first", file=("speech.mp3", mp3, "audio/mpeg")
    )
    assert (
        raw.headers["x-mmserve-model"] == "remote-asr" and "fell back from broken-asr" in raw.headers["x-mmserve-route"]
    )
    assert raw.parse().text == "served remotely"


def test_streamed_transcripts_come_from_the_provider(client: OpenAI, upstream: FakeProvider, mp3: bytes) -> None:
    events = list(
        client.audio.transcriptions.create(model="remote-asr", file=("speech.mp3", mp3, "audio/mpeg"), stream=True)
    )
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    done = events[-1]
    assert deltas == "hello from the provider" and done.type == "transcript.text.done"
    assert done.usage is not None and done.usage.seconds == math.ceil(SECONDS)
