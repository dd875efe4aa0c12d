"""DO's speech envelope by operator choice: ``speech_envelope`` always | on_accept_json | never.

Seed 000 says its speech response "is always wrapped in the standard data envelope regardless of
the requested format", and its curl sends no Accept header. With ``always`` (a card's
``dialects.speech_envelope`` or ``MMSERVE_SPEECH_ENVELOPE``) that curl works as written.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
import yaml
from openai import OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.settings import Settings
from tests.helpers.server import LiveServer

# Seed 000, "TTS Using Qwen 3 TTS Model": as written but for the host and the model.
SEED_000_TTS = """curl BASE_URL/v1/audio/speech \\
-H "Authorization: Bearer $MODEL_ACCESS_KEY" \\
-H "Content-Type: application/json" \\
-d '{
"model": "MODEL",
"input": "Hello, world!",
"voice": "alloy",
"response_format": "mp3",
"speed": 1.0
}'"""


def _seed_curl(url: str, model: str) -> bytes:
    cmd = SEED_000_TTS.replace("BASE_URL", url).replace("MODEL", model)
    return subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=60, check=True).stdout


def _seconds_of_mp3(data: bytes) -> float:
    with av.open(io.BytesIO(data), format="mp3") as f:
        return sum(frame.samples for frame in f.decode(audio=0)) / 24000


def test_seed_curl_gets_the_envelope_from_a_do_card(audio_server: LiveServer) -> None:
    body = json.loads(_seed_curl(audio_server.url, "do-tts"))
    assert body["response_format"] == "mp3" and body["content_type"] == "audio/mpeg"
    audio = base64.b64decode(body["data"][0]["b64_json"])
    assert 0.5 < _seconds_of_mp3(audio) < 5
    assert body["usage"]["type"] == "duration"


def test_default_card_answers_raw_audio_to_the_same_curl(audio_server: LiveServer) -> None:
    out = _seed_curl(audio_server.url, "demo-tts")
    assert out[:3] == b"ID3" or out[:2] in (b"\xff\xfb", b"\xff\xf3")
    assert _seconds_of_mp3(out) > 0.5


def test_sse_is_still_sse_with_always(audio_server: LiveServer) -> None:
    body = {"model": "do-tts", "input": "Hi there.", "voice": "alloy", "stream_format": "sse"}
    resp = httpx.post(f"{audio_server.url}/v1/audio/speech", json=body, timeout=60)
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert '"speech.audio.done"' in resp.text


@pytest.fixture(scope="module")
def never_server(data_dir: Path) -> Iterator[LiveServer]:
    path = data_dir / "never-envelope.yaml"
    path.write_text(yaml.safe_dump({"models": [{"id": "plain-tts", "task": "speech", "engine": "espeak-ng"}]}))
    server = LiveServer(create_app(Settings(data_dir=data_dir, speech_envelope="never"), load_catalog(path))).start()
    yield server
    server.stop()


def test_never_answers_audio_even_to_accept_json(never_server: LiveServer) -> None:
    client = OpenAI(base_url=never_server.url + "/v1", api_key="unused", max_retries=0)
    resp = client.audio.speech.create(
        model="plain-tts", voice="alloy", input="Hello.", extra_headers={"Accept": "application/json"}
    )
    assert _seconds_of_mp3(resp.content) > 0.3


def test_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSERVE_SPEECH_ENVELOPE", "always")
    assert Settings().speech_envelope == "always"
    monkeypatch.setenv("MMSERVE_SPEECH_ENVELOPE", "sometimes")
    with pytest.raises(ValueError, match="always"):
        Settings()
