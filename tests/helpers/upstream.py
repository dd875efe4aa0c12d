"""A catalog mixing upstream (fake provider) and local cards for every task, and helpers to read usage back.

Each task has a remote card on the fake provider, a local card, a local card whose weights are
missing (it fails when first used: local -> remote fallback) and routers over them. Retries are
quick (``retry_backoff_s``), and ``max_retries: 1``: a request that must fail for real needs two
scripted failures.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

KEY_ENV = "MMSERVE_TEST_UPSTREAM_KEY"


def upstream_catalog(base_url: str) -> dict[str, Any]:
    def remote(model: str, **options: Any) -> dict[str, Any]:
        return {
            "base_url": base_url,
            "model": model,
            "api_key_env": KEY_ENV,
            "provider": "fakeai",
            "max_retries": 1,
            "retry_backoff_s": 0.01,
            "timeout_s": 10,
            **options,
        }

    models: list[dict[str, Any]] = [
        {
            "id": "remote-chat",
            "task": "chat",
            "engine": "upstream-chat",
            "options": remote("their-chat"),
            "pricing": {"input_per_1m_tokens": 1.0, "output_per_1m_tokens": 2.0},
        },
        # ---------------------------------------------------------------- images
        {
            "id": "remote-image",
            "task": "image-generation",
            "engine": "upstream-image",
            "options": remote("their-image"),
            "capabilities": {"edits": True, "sizes": ["64x64", "48x32"]},
            "pricing": {"per_image": 0.04, "input_per_1m_tokens": 5.0, "output_per_1m_tokens": 40.0},
            "deployment": {"max_concurrency": 16},
        },
        {
            "id": "remote-image-pngonly",  # a provider without output_format: mmserve converts its PNGs
            "task": "image-generation",
            "engine": "upstream-image",
            "options": remote("their-png-image", send_output_format=False),
            "capabilities": {"sizes": ["64x64"]},
        },
        {
            "id": "remote-image-impatient",  # gives up on a slow provider quickly
            "task": "image-generation",
            "engine": "upstream-image",
            "options": remote("their-image", timeout_s=0.5, max_retries=0),
            "capabilities": {"sizes": ["64x64"]},
            "pricing": {"per_image": 0.01},
        },
        {
            "id": "local-image",
            "task": "image-generation",
            "engine": "diffusers-image",
            "source": "demo:image",
            "options": {"quality_steps": {"low": 1, "medium": 1, "high": 2}},
            "capabilities": {"edits": True, "sizes": ["64x64"]},
            "pricing": {"per_image": 0.001},
            "deployment": {"mode": "dedicated"},
        },
        *(
            {
                "id": broken,
                "task": "image-generation",
                "engine": "diffusers-image",
                "source": "./missing-image-weights",
                "capabilities": {"edits": True, "sizes": ["64x64"]},
            }
            for broken in ("broken-image", "broken-image-2")
        ),
        # ---------------------------------------------------------------- speech
        {
            "id": "remote-tts",
            "task": "speech",
            "engine": "upstream-speech",
            "options": remote("their-tts"),
            "capabilities": {"voices": ["alloy", "nova"]},
            "pricing": {"per_audio_second": 0.0002},
        },
        {
            "id": "remote-tts-sse",  # bills tokens, as gpt-4o-mini-tts does
            "task": "speech",
            "engine": "upstream-speech",
            "options": remote("their-token-tts", stream_format="sse"),
            "pricing": {"per_audio_second": 0.0001, "input_per_1m_tokens": 2.5, "output_per_1m_tokens": 10.0},
        },
        {"id": "local-tts", "task": "speech", "engine": "espeak-ng", "deployment": {"mode": "dedicated"}},
        {"id": "broken-tts", "task": "speech", "engine": "transformers-tts", "source": "./missing-tts-weights"},
        # ---------------------------------------------------------------- transcription
        {
            "id": "remote-asr",
            "task": "transcription",
            "engine": "upstream-transcription",
            "options": remote("their-asr"),
            "capabilities": {"translation": True},
            "pricing": {"per_audio_second": 0.0001},
        },
        {
            "id": "remote-asr-json",
            "task": "transcription",
            "engine": "upstream-transcription",
            "options": remote("their-asr", response_format="json"),
        },
        {
            "id": "local-asr",
            "task": "transcription",
            "engine": "pocketsphinx",
            "capabilities": {"languages": ["en"]},
            "deployment": {"mode": "dedicated"},
        },
        {"id": "broken-asr", "task": "transcription", "engine": "whisper", "source": "./missing-whisper-weights"},
        # ---------------------------------------------------------------- embeddings
        {
            "id": "remote-embed",
            "task": "embedding",
            "engine": "upstream-embedding",
            "options": remote("their-embed"),
            "capabilities": {"embedding_dimensions": 32, "matryoshka": True},
            "pricing": {"input_per_1m_tokens": 0.13},
        },
        {
            "id": "remote-embed-timed",  # only the fastest-router test uses it: its latency is that test's
            "task": "embedding",
            "engine": "upstream-embedding",
            "options": remote("their-embed"),
            "capabilities": {"embedding_dimensions": 32},
        },
        {
            "id": "remote-embed-float",  # a provider without base64 vectors
            "task": "embedding",
            "engine": "upstream-embedding",
            "options": remote("their-embed", encoding_format="float"),
            "capabilities": {"embedding_dimensions": 32},
        },
        {
            "id": "local-embed",
            "task": "embedding",
            "engine": "transformers-embedding",
            "source": "demo:clip",
            "capabilities": {"vision": True, "embedding_dimensions": 32, "matryoshka": True},
            "pricing": {"input_per_1m_tokens": 0.02},
            "deployment": {"mode": "dedicated"},
        },
        {
            "id": "broken-embed",
            "task": "embedding",
            "engine": "transformers-embedding",
            "source": "./missing-embed-weights",
            "capabilities": {"embedding_dimensions": 32},
        },
        # ---------------------------------------------------------------- video
        {
            "id": "remote-video",
            "task": "video-generation",
            "engine": "upstream-video",
            "options": remote("their-video", poll_interval_s=0.05),
            "capabilities": {"sizes": ["64x48"], "fps": [8], "durations": [1, 2], "image_to_video": True},
            "pricing": {"per_video_second": 0.1},
            "deployment": {"max_concurrency": 4},
        },
        {
            "id": "remote-video-down",  # a provider that cannot be reached (nothing listens there)
            "task": "video-generation",
            "engine": "upstream-video",
            "options": {**remote("their-video"), "base_url": "http://127.0.0.1:9/v1"},
            "capabilities": {"sizes": ["64x48"], "fps": [8], "durations": [1, 2]},
        },
        {
            "id": "local-video",
            "task": "video-generation",
            "engine": "diffusers-video",
            "source": "demo:video",
            "options": {"steps": 1, "guidance_scale": 1.0, "render_max_pixels": 4096},
            "capabilities": {"sizes": ["64x48"], "fps": [8], "durations": [1, 2]},
        },
        {
            "id": "broken-video",
            "task": "video-generation",
            "engine": "diffusers-video",
            "source": "./missing-video-weights",
            "capabilities": {"sizes": ["64x48"], "fps": [8], "durations": [1, 2]},
        },
    ]
    routers = [
        {"id": "images-remote-first", "task": "image-generation", "policy": "priority"},
        {"id": "images-local-first", "task": "image-generation", "policy": "priority"},
        {"id": "images-local-first-2", "task": "image-generation", "policy": "priority"},
        {"id": "images-slow-remote-first", "task": "image-generation", "policy": "priority"},
        {"id": "images-cheapest", "task": "image-generation", "policy": "cheapest"},
        {"id": "speech-remote-first", "task": "speech", "policy": "priority"},
        {"id": "speech-local-first", "task": "speech", "policy": "priority"},
        {"id": "asr-remote-first", "task": "transcription", "policy": "priority"},
        {"id": "asr-local-first", "task": "transcription", "policy": "priority"},
        {"id": "embed-remote-first", "task": "embedding", "policy": "priority"},
        {"id": "embed-local-first", "task": "embedding", "policy": "priority"},
        {"id": "embed-cheapest", "task": "embedding", "policy": "cheapest"},
        {"id": "embed-fastest", "task": "embedding", "policy": "fastest"},
        {"id": "videos-remote-first", "task": "video-generation", "policy": "priority"},
        {"id": "videos-local-first", "task": "video-generation", "policy": "priority"},
    ]
    candidates = {
        "images-remote-first": ["remote-image", "local-image"],
        "images-local-first": ["broken-image", "remote-image"],
        "images-local-first-2": ["broken-image-2", "remote-image"],
        "images-slow-remote-first": ["remote-image-impatient", "local-image"],
        "images-cheapest": ["remote-image", "local-image"],
        "speech-remote-first": ["remote-tts", "local-tts"],
        "speech-local-first": ["broken-tts", "remote-tts"],
        "asr-remote-first": ["remote-asr", "local-asr"],
        "asr-local-first": ["broken-asr", "remote-asr"],
        "embed-remote-first": ["remote-embed", "local-embed"],
        "embed-local-first": ["broken-embed", "remote-embed"],
        "embed-cheapest": ["remote-embed", "local-embed"],
        "embed-fastest": ["remote-embed-timed", "local-embed"],
        "videos-remote-first": ["remote-video-down", "local-video"],
        "videos-local-first": ["broken-video", "remote-video"],
    }
    for r in routers:
        r["candidates"] = candidates[r["id"]]
    return {"models": models, "routers": routers}


def usage_of(base: str, model: str, requests: int, timeout: float = 10.0) -> dict[str, Any]:
    """The usage totals of ``model`` once ``requests`` requests are recorded (records are flushed in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        total: dict[str, Any] = httpx.get(f"{base}/v1/usage", params={"model": model}, timeout=10).json()["total"]
        if total["requests"] >= requests or time.monotonic() > deadline:
            return total
        time.sleep(0.1)
