"""A live mmserve with the speech and transcription engines, shared by the audio e2e tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from openai import OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.settings import AudioSettings, Settings
from tests.helpers.server import LiveServer

AUDIO_CATALOG = {
    "models": [
        {
            "id": "demo-tts",
            "task": "speech",
            "engine": "espeak-ng",
            "limits": {"max_input_chars": 600},
            "pricing": {"per_audio_second": 0.000015},
            "deployment": {"mode": "dedicated"},
        },
        {
            "id": "demo-asr",
            "task": "transcription",
            "engine": "pocketsphinx",
            "capabilities": {"languages": ["en"]},
            "limits": {"max_audio_seconds": 60},
            "deployment": {"mode": "dedicated", "max_concurrency": 2},
        },
        {
            "id": "tiny-whisper",
            "task": "transcription",
            "engine": "whisper",
            "source": "demo:whisper",
            "options": {"max_new_tokens": 24},
            "capabilities": {"translation": True},
            "limits": {"max_audio_seconds": 120},
            "deployment": {"mode": "dedicated"},
        },
        {
            "id": "tiny-vits",
            "task": "speech",
            "engine": "transformers-tts",
            "source": "demo:vits",
            "options": {"seed": 0},
            "deployment": {"mode": "dedicated"},
        },
        # Serverless cards whose weights are missing: they fail when first used, so the
        # router aliases below fall back to the demo models (after that, a failed deployment
        # is tried last: one broken card per fallback test).
        {
            "id": "broken-tts",
            "task": "speech",
            "engine": "transformers-tts",
            "source": "./missing-tts-weights",
            "pricing": {"per_audio_second": 1.0},
        },
        *(
            {
                "id": broken,
                "task": "transcription",
                "engine": "whisper",
                "source": "./missing-whisper-weights",
                "pricing": {"per_audio_second": 1.0},
            }
            for broken in ("broken-asr", "broken-asr-2")
        ),
    ],
    "routers": [
        {"id": "resilient-tts", "task": "speech", "policy": "priority", "candidates": ["broken-tts", "demo-tts"]},
        {
            "id": "resilient-asr",
            "task": "transcription",
            "policy": "priority",
            "candidates": ["broken-asr", "demo-asr"],
        },
        {
            "id": "resilient-asr-2",
            "task": "transcription",
            "policy": "priority",
            "candidates": ["broken-asr-2", "demo-asr"],
        },
    ],
}
UPLOAD_LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="session")
def audio_server(data_dir: Path) -> Iterator[LiveServer]:
    path = data_dir / "audio-catalog.yaml"
    path.write_text(yaml.safe_dump(AUDIO_CATALOG))
    settings = Settings(data_dir=data_dir, config=path, audio=AudioSettings(max_upload_bytes=UPLOAD_LIMIT))
    server = LiveServer(create_app(settings, load_catalog(path))).start(timeout=300)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(audio_server: LiveServer) -> OpenAI:
    return OpenAI(base_url=audio_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
