"""POST /v1/audio/speech with the official openai SDK (and raw HTTP for the dialects)."""

from __future__ import annotations

import base64
import io
import json

import httpx
import openai
import pytest
import soundfile as sf
from openai import OpenAI

from mmserve.engines.common.voices import OPENAI_VOICES
from tests.helpers.audio import duration_of
from tests.helpers.server import LiveServer

TEXT = "The weather is nice today and the sun is shining."
EXPECTED = (1.5, 5.0)  # seconds: 9 words at 175 words per minute, plus the end pause
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def _seconds(data: bytes, fmt: str) -> float:
    if fmt == "pcm":
        return len(data) / 2 / 24000  # 24 kHz 16-bit mono, like OpenAI's pcm
    if fmt in ("wav", "flac"):
        samples, rate = sf.read(io.BytesIO(data))
        return float(len(samples) / rate)
    return duration_of(data)


@pytest.mark.parametrize("fmt", list(CONTENT_TYPES))
def test_every_response_format_decodes_to_speech_length_audio(client: OpenAI, fmt: str) -> None:
    response = client.audio.speech.create(model="demo-tts", input=TEXT, voice="alloy", response_format=fmt)  # type: ignore[arg-type]
    assert response.response.headers["content-type"].startswith(CONTENT_TYPES[fmt])
    assert EXPECTED[0] < _seconds(response.content, fmt) < EXPECTED[1]


def test_default_is_mp3_and_voices_differ(client: OpenAI) -> None:
    a = client.audio.speech.create(model="demo-tts", input=TEXT, voice="alloy")
    b = client.audio.speech.create(model="demo-tts", input=TEXT, voice={"id": "onyx"})
    c = client.audio.speech.create(model="demo-tts", input=TEXT, voice="en-gb+f3")
    assert a.response.headers["content-type"] == "audio/mpeg"
    assert len({a.content, b.content, c.content}) == 3


def test_speed_and_instructions(client: OpenAI) -> None:
    normal = _seconds(client.audio.speech.create(model="demo-tts", input=TEXT, voice="nova").content, "mp3")
    fast = client.audio.speech.create(model="demo-tts", input=TEXT, voice="nova", speed=2.0, instructions="Be quick.")
    assert normal / _seconds(fast.content, "mp3") == pytest.approx(2.0, rel=0.25)


def test_audio_is_streamed_as_it_is_produced(client: OpenAI) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="demo-tts", input=TEXT * 6, voice="alloy", response_format="pcm"
    ) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        chunks = [c for c in response.iter_bytes(chunk_size=None) if c]  # type: ignore[arg-type]
    assert len(chunks) > 5
    assert 10 < len(b"".join(chunks)) / 48000 < 30


def test_sse_stream_format(audio_server: LiveServer) -> None:
    body = {"model": "demo-tts", "input": TEXT, "voice": "coral", "response_format": "mp3", "stream_format": "sse"}
    events = []
    with httpx.stream("POST", f"{audio_server.url}/v1/audio/speech", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) > 3 and events[-1]["type"] == "speech.audio.done"
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    seconds = duration_of(audio)
    assert EXPECTED[0] < seconds < EXPECTED[1]
    usage = events[-1]["usage"]
    assert usage["type"] == "duration" and usage["seconds"] == pytest.approx(seconds, abs=0.1)
    assert usage["input_characters"] == len(TEXT)
    assert usage["cost"] == pytest.approx(usage["seconds"] * 0.000015, rel=1e-3)  # the card's per_audio_second


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_json_envelope_for_clients_asking_for_json(client: OpenAI, fmt: str) -> None:
    """DigitalOcean's dialect: Accept: application/json gets {"data": [{"b64_json": ...}]}."""
    raw = client.audio.speech.with_raw_response.create(
        model="demo-tts",
        input=TEXT,
        voice="alloy",
        response_format=fmt,  # type: ignore[arg-type]
        extra_headers={"Accept": "application/json"},
    )
    assert raw.headers["content-type"] == "application/json"
    body = raw.http_response.json()
    audio = base64.b64decode(body["data"][0]["b64_json"])
    assert EXPECTED[0] < _seconds(audio, fmt) < EXPECTED[1]
    if fmt == "wav":  # buffered: exact RIFF sizes
        assert int.from_bytes(audio[4:8], "little") == len(audio) - 8
    assert body["usage"]["seconds"] == pytest.approx(_seconds(audio, fmt), abs=0.1)
    assert body["usage"]["cost"] == pytest.approx(body["usage"]["seconds"] * 0.000015, rel=1e-3)
    assert float(raw.headers["x-mmserve-cost"]) == pytest.approx(body["usage"]["cost"])


def test_neural_model_speaks_too(client: OpenAI) -> None:
    response = client.audio.speech.create(model="tiny-vits", input="Hello world. How are you?", voice="echo")
    assert 1.0 < _seconds(response.content, "mp3") < 5.0


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": "\x00\x01 \u200b\n"}, 400, "input"),  # nothing to speak: was 200 with silence
        ({"input": "x " * 400}, 400, "input"),  # the card allows 600 characters
        ({"voice": "nobody"}, 400, "voice"),
        ({"voice": {"name": "alloy"}}, 400, "voice"),
        ({"speed": 4.5}, 400, "speed"),
        ({"speed": 0.1}, 400, "speed"),
        ({"response_format": "ogg"}, 400, "response_format"),
        ({"stream_format": "chunks"}, 400, "stream_format"),
        ({"model": "demo-asr"}, 400, "model"),
        ({"model": "no-such-model"}, 404, "model"),
        ({"input": "日本語", "model": "tiny-vits"}, 400, "input"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(audio_server: LiveServer, body: dict, status: int, param: str) -> None:
    request = {"model": "demo-tts", "input": TEXT, "voice": "alloy", **body}
    r = httpx.post(f"{audio_server.url}/v1/audio/speech", json=request, timeout=30)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"]


def test_sdk_raises_with_the_message(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.speech.create(model="demo-tts", input=TEXT, voice="nobody")
    assert "Unknown voice 'nobody'" in str(e.value)


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
def test_a_stream_whose_client_leaves_before_its_first_chunk_is_metered(
    audio_server: LiveServer, stream_format: str
) -> None:
    from tests.helpers.asgi import stalled_post

    def usage() -> dict:
        return httpx.get(f"{audio_server.url}/v1/usage?model=demo-tts", timeout=10).json()["total"]

    before = usage()
    body = {"model": "demo-tts", "input": TEXT, "voice": "alloy", "response_format": "pcm"}
    sent = stalled_post(audio_server, "/v1/audio/speech", {**body, "stream_format": stream_format})
    assert sent[0]["status"] == 200 and not any(m.get("body") for m in sent)
    after = usage()
    assert after["requests"] == before["requests"] + 1
    assert after["audio_seconds"] > before["audio_seconds"]  # the audio made before the client left
    # the dedicated model's one slot is free again
    again = httpx.post(f"{audio_server.url}/v1/audio/speech", json=body, timeout=30)
    assert again.status_code == 200 and len(again.content) > 1000


def test_an_alias_falls_back_when_its_first_speech_model_fails(client: OpenAI) -> None:
    raw = client.audio.speech.with_raw_response.create(model="resilient-tts", input=TEXT, voice="alloy")
    assert raw.headers["x-mmserve-model"] == "demo-tts"
    assert "fell back from broken-tts" in raw.headers["x-mmserve-route"]
    assert _seconds(raw.content, "mp3") > 1.0
    with pytest.raises(openai.APIStatusError) as err:  # asked for by name, the failure is the answer
        client.audio.speech.create(model="broken-tts", input=TEXT, voice="alloy")
    assert err.value.status_code == 503 and "'broken-tts' is unavailable" in err.value.message
    assert "missing-tts-weights" not in err.value.message  # the server's paths are not the client's business


def test_models_list_the_loaded_engines_voices_and_each_one_speaks(client: OpenAI, audio_server: LiveServer) -> None:
    models = httpx.get(f"{audio_server.url}/v1/models", params={"task": "speech"}).json()["data"]
    voices = {m["id"]: m["capabilities"]["voices"] for m in models}
    espeak = voices["demo-tts"]  # the card lists none: espeak-ng's voices and the OpenAI names it maps
    assert {"alloy", "coral", "sage"} <= set(espeak) and len(espeak) > 50
    native = [v for v in espeak if v not in OPENAI_VOICES]  # espeak-ng's own voices
    for voice in (native[0], native[len(native) // 2], native[-1]):
        audio = client.audio.speech.create(model="demo-tts", input="Bonjour", voice=voice, response_format="wav")
        assert _seconds(audio.content, "wav") > 0.2, voice
    assert voices["tiny-vits"][:2] == ["alloy", "ash"] and "default" in voices["tiny-vits"]
    one = httpx.get(f"{audio_server.url}/v1/models/demo-tts").json()
    assert one["capabilities"]["voices"] == espeak
