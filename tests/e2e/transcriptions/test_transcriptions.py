"""POST /v1/audio/transcriptions and /translations (and Pharia's /transcribe) with the openai SDK."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.e2e.conftest import UPLOAD_LIMIT
from tests.helpers.audio import encode, wav_bytes
from tests.helpers.server import LiveServer
from tests.helpers.speech import speak
from tests.helpers.whisper import force_script

SENTENCES = ("hello world how are you today", "the weather is nice today and the sun is shining")
WORDS = set(" ".join(SENTENCES).split())


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    pause = np.zeros(12000, np.float32)
    return np.concatenate([pause, speak(SENTENCES[0]), pause, speak(SENTENCES[1]), pause])


@pytest.fixture(scope="module")
def speech_wav(speech: np.ndarray) -> bytes:
    return wav_bytes(speech, 16000)


def _shares_words(text: str, n: int = 8) -> bool:
    return len(set(re.findall(r"[a-z']+", text.lower())) & WORDS) >= n


def test_json(client: OpenAI, speech_wav: bytes, speech: np.ndarray) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(model="demo-asr", file=("speech.wav", speech_wav))
    t = raw.parse()
    assert _shares_words(t.text), t.text
    assert t.usage is not None and t.usage.type == "duration"
    assert t.usage.seconds == pytest.approx(len(speech) / 16000, abs=0.01)  # type: ignore[union-attr]
    cost = t.usage.seconds * 0.0001  # type: ignore[union-attr]
    assert t.usage.model_dump()["cost"] == pytest.approx(cost, rel=1e-3)
    assert float(raw.headers["x-mmserve-cost"]) == pytest.approx(cost, rel=1e-3)


def test_text(client: OpenAI, speech_wav: bytes) -> None:
    text = client.audio.transcriptions.create(model="demo-asr", file=("speech.wav", speech_wav), response_format="text")
    assert isinstance(text, str) and text.endswith("\n") and _shares_words(text)


def _parse_cues(body: str, sep: str) -> list[tuple[float, float, str]]:
    clock = rf"(\d\d):(\d\d):(\d\d){re.escape(sep)}(\d\d\d)"
    cues = []
    for m in re.finditer(rf"{clock} --> {clock}\n(.+)\n", body):
        g = [int(x) for x in m.groups()[:8]]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        cues.append((start, end, m.group(9)))
    return cues


def test_srt(client: OpenAI, speech_wav: bytes) -> None:
    body = client.audio.transcriptions.create(model="demo-asr", file=("speech.wav", speech_wav), response_format="srt")
    blocks = body.strip().split("\n\n")
    assert [b.split("\n")[0] for b in blocks] == [str(i) for i in range(1, len(blocks) + 1)]  # numbered cues
    cues = _parse_cues(body, ",")
    assert len(cues) == len(blocks) >= 2
    assert all(a[1] <= b[0] and a[0] < a[1] for a, b in itertools.pairwise(cues))
    assert _shares_words(" ".join(c[2] for c in cues))


def test_vtt(client: OpenAI, speech_wav: bytes) -> None:
    body = client.audio.transcriptions.create(model="demo-asr", file=("speech.wav", speech_wav), response_format="vtt")
    assert body.startswith("WEBVTT\n\n")
    cues = _parse_cues(body, ".")
    assert len(cues) >= 2 and [c[0] for c in cues] == sorted(c[0] for c in cues)
    assert _shares_words(" ".join(c[2] for c in cues))


def test_verbose_json_with_segments_and_words(client: OpenAI, speech_wav: bytes, speech: np.ndarray) -> None:
    t = client.audio.transcriptions.create(
        model="demo-asr",
        file=("speech.wav", speech_wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert t.language == "english" and t.duration == pytest.approx(len(speech) / 16000, abs=0.01)
    assert t.segments and len(t.segments) >= 2 and _shares_words(t.text)
    last = 0.0
    for i, s in enumerate(t.segments):
        assert s.id == i and last <= s.start < s.end <= t.duration
        last = s.end
    assert t.words and _shares_words(" ".join(w.word for w in t.words))
    assert [w.start for w in t.words] == sorted(w.start for w in t.words)
    assert all(t.segments[0].start <= w.start <= w.end <= t.segments[-1].end for w in t.words)
    assert t.usage is not None and t.usage.seconds == pytest.approx(t.duration)


def test_verbose_json_default_granularity_is_segments(
    client: OpenAI, speech_wav: bytes, audio_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the language's name comes from transformers' table: importing it takes ~1 s, never on the event loop
    from mmserve.api.transcriptions import transcripts

    threads: list[threading.Thread] = []
    name = transcripts.language_name
    monkeypatch.setattr(
        transcripts, "language_name", lambda code: threads.append(threading.current_thread()) or name(code)
    )
    t = client.audio.transcriptions.create(
        model="demo-asr", file=("speech.wav", speech_wav), response_format="verbose_json"
    )
    assert t.segments and t.words is None and t.language == "english"
    assert threads and audio_server.thread not in threads


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "ogg", "webm"])
def test_compressed_uploads_are_decoded(client: OpenAI, fmt: str) -> None:
    data = encode(speak(SENTENCES[1]), 16000, fmt)  # every container is also decoded in tests/media
    t = client.audio.transcriptions.create(model="demo-asr", file=(f"speech.{fmt}", data))
    assert _shares_words(t.text, 5), (fmt, t.text)


def test_streaming_sends_deltas_then_done(client: OpenAI, speech_wav: bytes) -> None:
    events = list(client.audio.transcriptions.create(model="demo-asr", file=("s.wav", speech_wav), stream=True))
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = events[-1]
    assert len(deltas) >= 2 and done.type == "transcript.text.done"
    assert "".join(d.delta for d in deltas) == done.text and _shares_words(done.text)
    assert done.usage is not None and done.usage.type == "duration"
    assert done.usage.model_dump()["cost"] == pytest.approx(done.usage.seconds * 0.0001, rel=1e-3)  # type: ignore[union-attr]


def test_pharia_transcribe_route(audio_server: LiveServer, speech_wav: bytes) -> None:
    r = httpx.post(
        f"{audio_server.url}/transcribe",
        files={"file": ("speech.wav", speech_wav, "audio/wav")},
        data={"model": "demo-asr", "response_format": "json"},
        timeout=60,
    )
    assert r.status_code == 200 and _shares_words(r.json()["text"])


@pytest.fixture
def scripted_whisper(audio_server: LiveServer) -> Iterator[None]:
    engine = audio_server.app.state.mm.runtime.deployments["tiny-whisper"].engine
    force_script(engine)
    yield
    engine.extra_logits_processors = []


@pytest.mark.usefixtures("scripted_whisper")
def test_whisper_timestamps_through_the_api(client: OpenAI, speech_wav: bytes) -> None:
    t = client.audio.transcriptions.create(
        model="tiny-whisper",
        file=("speech.wav", speech_wav),
        language="en",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert t.text == "Hello world. How are you?" and t.language == "english"
    assert [(s.start, s.end, s.text) for s in t.segments or []] == [
        (0.0, 1.0, "Hello world."),
        (1.2, 2.4, "How are you?"),
    ]
    assert [w.word for w in t.words or []] == ["Hello", "world.", "How", "are", "you?"]
    srt = client.audio.transcriptions.create(model="tiny-whisper", file=("s.wav", speech_wav), response_format="srt")
    assert _parse_cues(srt, ",") == [(0.0, 1.0, "Hello world."), (1.2, 2.4, "How are you?")]
    tr = client.audio.translations.create(model="tiny-whisper", file=("s.wav", speech_wav), prompt="A greeting.")
    assert tr.text == "Hello world. How are you?"


def test_whisper_free_decoding_json(client: OpenAI, speech_wav: bytes) -> None:
    t = client.audio.transcriptions.create(model="tiny-whisper", file=("s.wav", speech_wav), temperature=0.5)
    assert isinstance(t.text, str) and t.usage is not None


def _post(server: LiveServer, path: str = "/v1/audio/transcriptions", **kw: object) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", timeout=60, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "file", "status", "param"),
    [
        ({"model": "demo-asr"}, None, 400, "file"),
        ({"model": "demo-asr", "file": "not a file"}, None, 400, "file"),
        ({}, b"WAV", 400, "model"),
        ({"model": "demo-asr"}, b"", 400, "file"),
        ({"model": "demo-asr"}, b"%PDF-1.7 not audio at all", 415, "file"),
        ({"model": "demo-asr"}, b"RIFF\x10\x00\x00\x00WAVEfmt garbage", 400, "file"),
        ({"model": "demo-asr", "response_format": "docx"}, "wav", 400, "response_format"),
        ({"model": "demo-asr", "temperature": "2"}, "wav", 400, "temperature"),
        ({"model": "demo-asr", "timestamp_granularities[]": "word"}, "wav", 400, "timestamp_granularities"),
        (
            {"model": "demo-asr", "timestamp_granularities[]": "line", "response_format": "verbose_json"},
            "wav",
            400,
            "timestamp_granularities[0]",
        ),
        ({"model": "demo-asr", "stream": "true", "response_format": "srt"}, "wav", 400, "response_format"),
        ({"model": "demo-asr", "language": "fr"}, "wav", 400, "language"),
        ({"model": "demo-tts"}, "wav", 400, "model"),
        ({"model": "nope"}, "wav", 404, "model"),
    ],
)
def test_bad_uploads_are_4xx_naming_the_field(
    audio_server: LiveServer, data: dict, file: bytes | str | None, status: int, param: str
) -> None:
    if file == "wav":
        file = wav_bytes(np.zeros(1600, np.float32), 16000)
    files = {"file": ("a.wav", file)} if isinstance(file, bytes) else None
    r = _post(audio_server, data=data, files=files or {"unused": ("x", b"")})
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["message"]


def test_a_form_over_its_limits_says_which(audio_server: LiveServer) -> None:
    """Starlette's limits are the server's: each refusal has its code and names the limit."""
    wav = ("a.wav", wav_bytes(np.zeros(1600, np.float32), 16000))
    r = _post(audio_server, files=[("model", (None, "demo-asr")), ("file", wav), ("x", (None, "y" * 70_000))])
    assert r.status_code == 413 and r.json()["error"]["code"] == "field_too_large", r.text
    r = _post(audio_server, files=[("model", (None, "demo-asr")), ("file", wav)] + [("x", (None, "y"))] * 40)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_fields", r.text
    assert "at most 32" in r.json()["error"]["message"]
    r = _post(audio_server, files=[("model", (None, "demo-asr")), ("file", wav), ("file", wav)])
    err = r.json()["error"]
    assert (r.status_code, err["code"], err["param"]) == (400, "too_many_files", "file"), r.text


def test_translation_needs_a_model_that_translates(audio_server: LiveServer, speech_wav: bytes) -> None:
    r = _post(audio_server, "/v1/audio/translations", data={"model": "demo-asr"}, files={"file": ("a.wav", speech_wav)})
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_capability"


def test_too_long_audio_is_400(audio_server: LiveServer) -> None:
    data = wav_bytes(np.zeros(16000 * 61, np.float32), 16000)  # demo-asr allows 60 s (1.9 MB: under the cap)
    r = _post(audio_server, data={"model": "demo-asr"}, files={"file": ("long.wav", data)})
    assert r.status_code == 400 and r.json()["error"]["code"] == "audio_too_long"
    assert "60 seconds" in r.json()["error"]["message"]


def test_too_large_upload_is_413_while_it_arrives(audio_server: LiveServer) -> None:
    data = b"RIFF" + b"\0" * (UPLOAD_LIMIT + 2 * 1024 * 1024)
    r = _post(audio_server, data={"model": "demo-asr"}, files={"file": ("big.wav", data)})
    assert r.status_code == 413 and r.json()["error"]["param"] == "file"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies to the streamed body
        boundary = b"--b\r\n"
        yield boundary + b'Content-Disposition: form-data; name="model"\r\n\r\ndemo-asr\r\n'
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        for _ in range(UPLOAD_LIMIT // 65536 + 40):
            yield b"\0" * 65536

    r = _post(audio_server, content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413


def test_json_body_is_415(audio_server: LiveServer) -> None:
    r = _post(audio_server, json={"model": "demo-asr", "file": "aGVsbG8="})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]["message"]


def test_a_stream_whose_client_leaves_before_its_first_event_is_metered(
    audio_server: LiveServer, speech_wav: bytes
) -> None:
    from tests.helpers.asgi import stalled_post

    def usage() -> dict:
        return httpx.get(f"{audio_server.url}/v1/usage?model=demo-asr", timeout=10).json()["total"]

    before = usage()
    form = {"model": "demo-asr", "stream": "true"}
    sent = stalled_post(audio_server, "/v1/audio/transcriptions", form, files={"file": ("s.wav", speech_wav)})
    assert sent[0]["status"] == 200 and not any(m.get("body") for m in sent)
    after = usage()
    assert after["requests"] == before["requests"] + 1
    assert after["audio_seconds"] > before["audio_seconds"]  # the audio heard up to the first segment


def test_an_alias_falls_back_when_its_first_transcription_model_fails(client: OpenAI, speech_wav: bytes) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(model="resilient-asr", file=("s.wav", speech_wav))
    assert raw.headers["x-mmserve-model"] == "demo-asr"
    assert "fell back from broken-asr" in raw.headers["x-mmserve-route"]
    assert _shares_words(raw.parse().text)
    # streamed: the fallback happens before the first event
    stream = client.audio.transcriptions.with_raw_response.create(
        model="resilient-asr-2", file=("s.wav", speech_wav), stream=True
    )
    assert "fell back from broken-asr-2" in stream.headers["x-mmserve-route"]
    events = list(stream.parse())
    assert events[-1].type == "transcript.text.done" and _shares_words(events[-1].text)
