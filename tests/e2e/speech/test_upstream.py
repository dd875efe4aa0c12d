"""Speech cards on a third-party provider through the openai SDK against `mmserve serve`: formats encoded by
mmserve from the provider's PCM, streaming as it arrives, token usage, voices, fallback both ways."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import httpx
import openai
import pytest
import soundfile as sf
from openai import OpenAI

from tests.helpers.fake_provider import FakeProvider
from tests.helpers.fake_provider_media import SPEECH_RATE, SPEECH_SECONDS_PER_WORD
from tests.helpers.process import ServerProcess
from tests.helpers.upstream import usage_of


@pytest.fixture(scope="module")
def client(upstream_server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=upstream_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _seconds(words: int) -> float:
    return int(SPEECH_SECONDS_PER_WORD * words * SPEECH_RATE) / SPEECH_RATE


def test_speech_is_the_providers_audio_in_the_asked_format_metered_in_seconds(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess
) -> None:
    before = usage_of(upstream_server.url, "remote-tts", 0)
    raw = client.audio.speech.with_raw_response.create(
        model="remote-tts", voice="nova", input="one two three four", response_format="wav", speed=1.5
    )
    assert raw.headers["x-mmserve-model"] == "remote-tts"
    sent = upstream.requests[-1]
    assert sent == {
        "model": "their-tts",
        "input": "one two three four",
        "voice": "nova",
        "response_format": "pcm",
        "speed": 1.5,
    }
    audio, rate = sf.read(io.BytesIO(raw.content))
    assert rate == 24000 and len(audio) / rate == pytest.approx(_seconds(4), abs=0.01)
    assert 0.2 < abs(audio).max() < 0.4  # the fake's tone at 0.3
    after = usage_of(upstream_server.url, "remote-tts", before["requests"] + 1)
    assert after["audio_seconds"] - before["audio_seconds"] == pytest.approx(_seconds(4), abs=1e-6)
    assert after["cost"] - before["cost"] == pytest.approx(_seconds(4) * 0.0002)


def test_a_provider_billing_tokens_is_metered_in_its_tokens(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess
) -> None:
    before = usage_of(upstream_server.url, "remote-tts-sse", 0)
    audio = client.audio.speech.create(
        model="remote-tts-sse", voice="alloy", input="five words to say here", response_format="pcm"
    )
    assert upstream.requests[-1]["stream_format"] == "sse"
    pcm = audio.read()
    assert len(pcm) // 2 == pytest.approx(_seconds(5) * 24000, abs=2)
    pieces = -(-int(_seconds(5) * SPEECH_RATE) * 2 // 4801)  # the fake's output tokens: one per piece it sent
    after = usage_of(upstream_server.url, "remote-tts-sse", before["requests"] + 1)
    assert after["input_tokens"] - before["input_tokens"] == 5
    assert after["output_tokens"] - before["output_tokens"] == pieces
    cost = _seconds(5) * 0.0001 + 5 * 2.5 / 1e6 + pieces * 10.0 / 1e6
    assert after["cost"] - before["cost"] == pytest.approx(cost)


def test_sse_answers_carry_the_providers_token_usage(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess
) -> None:
    body = {"model": "remote-tts-sse", "voice": "alloy", "input": "two words", "stream_format": "sse"}
    with httpx.stream("POST", f"{upstream_server.url}/v1/audio/speech", json=body, timeout=60) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data:")]
    done = json.loads(lines[-1][5:])
    assert done["type"] == "speech.audio.done"
    assert done["usage"]["type"] == "tokens" and done["usage"]["input_tokens"] == 2


def test_audio_streams_as_the_provider_sends_it(upstream: FakeProvider, upstream_server: ServerProcess) -> None:
    upstream.gate = threading.Event()  # the provider sends its first piece, then waits
    body = {"model": "remote-tts", "voice": "alloy", "input": "a slow stream of many words", "response_format": "pcm"}
    got = 0
    with httpx.stream("POST", f"{upstream_server.url}/v1/audio/speech", json=body, timeout=60) as r:
        chunks = r.iter_bytes()
        got += len(next(chunks))  # arrives while the provider still holds the rest
        assert not upstream.gate.is_set()
        upstream.gate.set()
        got += sum(len(c) for c in chunks)
    assert got // 2 == pytest.approx(_seconds(6) * 24000, abs=2)


def test_a_voice_the_card_does_not_list_is_a_400_before_the_provider_is_asked(
    client: OpenAI, upstream: FakeProvider
) -> None:
    sent = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.speech.create(model="remote-tts", voice="onyx", input="hello")
    err: Any = e.value.body
    assert err["param"] == "voice" and "alloy, nova" in err["message"]
    assert len(upstream.requests) == sent


def test_a_failing_provider_falls_back_to_the_local_voice(client: OpenAI, upstream: FakeProvider) -> None:
    upstream.fail_next(503, path="/v1/audio/speech", times=2)
    raw = client.audio.speech.with_raw_response.create(
        model="speech-remote-first", voice="alloy", input="hello there", response_format="wav"
    )
    assert raw.headers["x-mmserve-model"] == "local-tts"
    assert "fell back from remote-tts (upstream_error)" in raw.headers["x-mmserve-route"]
    audio, _ = sf.read(io.BytesIO(raw.content))
    assert len(audio) > 0


def test_a_broken_local_voice_falls_back_to_the_provider(client: OpenAI, upstream: FakeProvider) -> None:
    raw = client.audio.speech.with_raw_response.create(
        model="speech-local-first", voice="alloy", input="hello there", response_format="wav"
    )
    assert raw.headers["x-mmserve-model"] == "remote-tts"
    assert "fell back from broken-tts" in raw.headers["x-mmserve-route"]
    audio, _ = sf.read(io.BytesIO(raw.content))
    assert len(audio) / 24000 == pytest.approx(_seconds(2), abs=0.01)
