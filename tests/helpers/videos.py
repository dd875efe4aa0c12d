"""Video test catalogs, tiny Wan pipelines (one broken for real), and MP4 checks."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av

from mmserve.catalog.builders.video import build_tiny_wan

TINY = {"steps": 2, "guidance_scale": 1.0}


def video_catalog(broken_source: Path) -> dict[str, Any]:
    return {
        "models": [
            {
                "id": "tiny-video",
                "task": "video-generation",
                "engine": "diffusers-video",
                "source": "demo:video",
                "options": TINY,
                "capabilities": {
                    "image_to_video": True,
                    "sizes": ["64x48", "96x64", "1280x720"],
                    "fps": [8, 16],
                    # DO's example sends no seconds: the default (first) keeps its 1280x720 clip short
                    "durations": [0.25, 0.5, 1, 2],
                },
                "limits": {"max_video_seconds": 2},
                "pricing": {"per_video_second": 0.01},
                "deployment": {"mode": "dedicated", "max_concurrency": 1, "max_queue": 16},
            },
            {
                "id": "text-only-video",
                "task": "video-generation",
                "engine": "diffusers-video",
                "source": "demo:video",
                "options": TINY,
                "capabilities": {"image_to_video": False, "sizes": ["64x48"], "fps": [8], "durations": [1]},
                "deployment": {"max_queue": 0},  # refuses every job: the full-queue 503
            },
            {
                # too few rotary positions for 2 s at 8 fps: fails inside the model, for real
                "id": "broken-video",
                "task": "video-generation",
                "engine": "diffusers-video",
                "source": str(broken_source),
                "options": TINY,
                "capabilities": {"sizes": ["64x48"], "fps": [8], "durations": [2]},
            },
            {"id": "tiny-chat", "task": "chat", "engine": "transformers-chat", "source": "demo:text-lm"},
        ]
    }


def build_broken_wan(out: Path) -> Path:
    if not (out / "model_index.json").exists():
        out.mkdir(parents=True, exist_ok=True)
        build_tiny_wan(out, rope_max_seq_len=2)
    return out


def mp4_info(data: bytes) -> tuple[int, int, int, float, str]:
    """(frames, width, height, fps, codec) by decoding every frame with PyAV."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        ctx = stream.codec_context
        return frames, ctx.width, ctx.height, float(stream.average_rate or 0), ctx.name
