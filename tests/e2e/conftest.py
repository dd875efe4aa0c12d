"""Live mmserve servers shared by the e2e tests: tiny chat models, image models, speech engines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest
import yaml

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.settings import AudioSettings, FetchSettings, Settings
from tests.helpers.fake_provider import FakeProvider
from tests.helpers.models import build_short_context_gpt2
from tests.helpers.process import ServerProcess
from tests.helpers.server import LiveServer, free_port
from tests.helpers.upstream import KEY_ENV, upstream_catalog

DEMO_YAML = resources.files("mmserve.catalog").joinpath("demo.yaml")

CHAT_CATALOG = {
    "models": [
        {
            "id": "demo-vlm",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:vlm",
            "capabilities": {"vision": True, "max_images": 4, "video": True, "context_length": 2048},
            "limits": {"max_output_tokens": 64, "video_fps": 1, "max_video_frames": 4},
            "deployment": {"mode": "dedicated", "max_concurrency": 4},
        },
        {
            "id": "demo-audio",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:audio-lm",
            "capabilities": {"audio_input": True, "max_audios": 2, "context_length": 2048},
            "limits": {"max_output_tokens": 64, "max_audio_seconds": 30},
            "pricing": {"per_audio_second": 0.01},
        },
        {
            "id": "tiny-text",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "capabilities": {"multimodal_enabled": False, "context_length": 2048},
            "limits": {"max_output_tokens": 64},
        },
        {
            # Claims more context than its position table has: fails mid-generation for real.
            "id": "broken-gpt2",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "broken-gpt2",
            "capabilities": {"context_length": 512},
            "limits": {"max_output_tokens": 64},
        },
        {
            # With n: 2, the second choice fails while the first is still generating (slowly).
            "id": "faulty-choices",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "options": {"logits_processors": ["tests.helpers.faulty:FailingSecondChoice"]},
            "limits": {"max_output_tokens": 64},
        },
        {
            "id": "slow-text",  # every decoding step takes faulty.STEP_S
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "options": {"logits_processors": ["tests.helpers.faulty:SlowSteps"]},
            "limits": {"max_output_tokens": 64},
        },
    ]
}


@pytest.fixture(scope="session")
def chat_catalog_file(data_dir: Path) -> Path:
    build_short_context_gpt2(data_dir / "broken-gpt2", positions=24)
    path = data_dir / "chat-catalog.yaml"
    path.write_text(yaml.safe_dump(CHAT_CATALOG))
    return path


@pytest.fixture(scope="session")
def chat_server(data_dir: Path, chat_catalog_file: Path) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=data_dir,
        config=chat_catalog_file,
        fetch=FetchSettings(allow_networks=["127.0.0.1/32"]),
    )
    server = LiveServer(create_app(settings, load_catalog(chat_catalog_file))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_url(chat_server: LiveServer) -> str:
    return chat_server.url + "/v1"


# ---------------------------------------------------------------- images

IMAGE_EXTRA_CARDS = [
    {
        # any size within 512x512 pixels (no list), serverless
        "id": "free-size-image",
        "task": "image-generation",
        "engine": "diffusers-image",
        "source": "demo:image",
        "options": {"quality_steps": {"low": 1, "medium": 2, "high": 3}, "max_steps": 10},
        "capabilities": {"edits": True},
        "limits": {"max_image_pixels": 512 * 512, "max_n": 2},
    },
    {
        "id": "no-edit-image",
        "task": "image-generation",
        "engine": "diffusers-image",
        "source": "demo:image",
        "options": {"quality_steps": {"low": 1, "medium": 2, "high": 3}},
    },
]


@pytest.fixture(scope="session")
def image_server(data_dir: Path) -> Iterator[LiveServer]:
    """The shipped demo-image card (from the demo catalog) plus two variants, on one live server."""
    demo = next(c for c in yaml.safe_load(DEMO_YAML.read_text())["models"] if c["id"] == "demo-image")
    path = data_dir / "image-catalog.yaml"
    path.write_text(yaml.safe_dump({"models": [demo, *IMAGE_EXTRA_CARDS]}))
    settings = Settings(data_dir=data_dir, config=path)
    server = LiveServer(create_app(settings, load_catalog(path))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def images_base_url(image_server: LiveServer) -> str:
    return image_server.url + "/v1"


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
            # the operator chose DO's dialect for this model: every answer is the JSON envelope
            "id": "do-tts",
            "task": "speech",
            "engine": "espeak-ng",
            "dialects": {"speech_envelope": "always"},
        },
        {
            "id": "demo-asr",
            "task": "transcription",
            "engine": "pocketsphinx",
            "capabilities": {"languages": ["en"]},
            "limits": {"max_audio_seconds": 60},
            "pricing": {"per_audio_second": 0.0001},
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


# ---------------------------------------------------------------- chat formats (reasoning, tools, JSON)

DEMO_CARDS = yaml.safe_load(DEMO_YAML.read_text())["models"]
FORMATS = {"reasoning_format": "think-tags", "tool_call_format": "hermes", "context_length": 2048}
FORMATS_CATALOG = {
    "models": [
        {
            # Plays a real reasoning / tool-calling model: see tests/helpers/scripted.py.
            "id": "tool-lm",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:tool-lm",
            "options": {"logits_processors": ["tests.helpers.scripted:ScriptedReplies"]},
            "capabilities": FORMATS,
            "limits": {"max_output_tokens": 256},
        },
        {
            # The same weights unscripted: random output, held to shape only by constrained decoding.
            "id": "tool-lm-random",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:tool-lm",
            "capabilities": FORMATS,
            "limits": {"max_output_tokens": 256},
        },
        {
            "id": "demo-vlm",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:vlm",
            "capabilities": {"vision": True, "context_length": 2048},
            "limits": {"max_output_tokens": 256},
        },
        next(card for card in DEMO_CARDS if card["id"] == "demo-tools"),  # as `mmserve serve` has it
    ]
}


@pytest.fixture(scope="session")
def formats_server(data_dir: Path) -> Iterator[LiveServer]:
    path = data_dir / "formats-catalog.yaml"
    path.write_text(yaml.safe_dump(FORMATS_CATALOG))
    settings = Settings(data_dir=data_dir, config=path, fetch=FetchSettings(allow_networks=["127.0.0.1/32"]))
    server = LiveServer(create_app(settings, load_catalog(path))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cli_server(data_dir: Path) -> Iterator[str]:
    """`mmserve serve` on the demo catalog, started by its real CLI (no MMSERVE_* settings)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMSERVE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmserve.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/health", timeout=2).json()["models"]["demo-vlm"] == "loaded":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise TimeoutError("mmserve serve did not come up")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------- upstream providers (every task)


@pytest.fixture(scope="session")
def upstream_provider() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="session")
def upstream_server(
    upstream_provider: FakeProvider, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`mmserve serve` (a real process) over local cards and the fake provider's, for every task."""
    root = tmp_path_factory.mktemp("upstream")
    (root / "data").mkdir()
    (data_dir / "models").mkdir(exist_ok=True)
    (root / "data" / "models").symlink_to(data_dir / "models")  # the session's tiny models, built once
    config = root / "catalog.yaml"
    config.write_text(yaml.safe_dump(upstream_catalog(upstream_provider.base_url)))
    env = {
        KEY_ENV: upstream_provider.key,
        "MMSERVE_FETCH__ALLOW_NETWORKS": '["127.0.0.1/32"]',  # the fake's links are on loopback
        "MMSERVE_ROUTE_COOLDOWN_S": "0",
        "MMSERVE_USAGE_FLUSH_INTERVAL_S": "0.1",
        "MMSERVE_JOBS__PROGRESS_INTERVAL_S": "0.1",
        "MMSERVE_JOBS__DISPATCH_INTERVAL_S": "0.2",
    }
    server = ServerProcess(root / "data", config, env=env)
    server.start(wait_for=["local-image", "local-tts", "local-asr", "local-embed"], timeout=600)
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_provider: FakeProvider) -> Iterator[FakeProvider]:
    """The session's fake provider, behaving normally again for each test."""
    upstream_provider.reset()
    upstream_provider.image_links = upstream_provider.video_links = upstream_provider.hold_videos = False
    upstream_provider.link_base = None
    upstream_provider.transcript_text = "hello from the provider"
    yield upstream_provider
    upstream_provider.reset()
