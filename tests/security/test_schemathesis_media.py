"""Property-based fuzzing of the images, audio and videos endpoints (JSON and multipart): no 5xx.

Same approach as ``test_schemathesis.py`` (the app's own OpenAPI schema, valid and invalid
requests, deterministic by default) against a live server whose catalog holds tiny media
models: the demo image pipeline (64x64 only, one step), espeak-ng, PocketSphinx and a tiny
video pipeline (one 64x48 frame size, short clips). Requests that pass validation run for
real, so generated images, speech and queued video jobs are real too; to keep them cheap,
half of the generated bodies are steered to those models with small counts.
``MMSERVE_FUZZ_EXAMPLES=400 MMSERVE_FUZZ_RANDOM=1`` makes a longer, random local run.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.transport.serialization import Binary

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.settings import AudioSettings, JobSettings, LimitSettings, Settings
from tests.helpers.audio import encode, tone
from tests.helpers.hostile import decode_time_limit
from tests.helpers.images import image_bytes
from tests.helpers.server import LiveServer
from tests.security.conformance import conformance_failures, send

ENDPOINTS = r"^/v1/(images|audio|videos)"
EXAMPLES = int(os.environ.get("MMSERVE_FUZZ_EXAMPLES", "150"))
MiB = 1024 * 1024

MEDIA_CATALOG = {
    "models": [
        {
            "id": "fuzz-image",
            "task": "image-generation",
            "engine": "diffusers-image",
            "source": "demo:image",
            "options": {"quality_steps": {"low": 1, "medium": 1, "high": 1}, "max_steps": 2},
            "capabilities": {"sizes": ["64x64"], "edits": True},
            "limits": {"max_n": 2},
            "deployment": {"mode": "dedicated", "max_concurrency": 2, "max_queue": 64},
        },
        {
            "id": "fuzz-tts",
            "task": "speech",
            "engine": "espeak-ng",
            "limits": {"max_input_chars": 200},
            "deployment": {"mode": "dedicated", "max_concurrency": 2, "max_queue": 64},
        },
        {
            "id": "fuzz-asr",
            "task": "transcription",
            "engine": "pocketsphinx",
            "capabilities": {"languages": ["en"]},
            "limits": {"max_audio_seconds": 5},
            "deployment": {"mode": "dedicated", "max_concurrency": 2, "max_queue": 64},
        },
        {
            "id": "fuzz-video",
            "task": "video-generation",
            "engine": "diffusers-video",
            "source": "demo:video",
            "options": {"steps": 1, "guidance_scale": 1.0},
            "capabilities": {"image_to_video": True, "sizes": ["64x48"], "fps": [8], "durations": [0.25, 0.5]},
            "limits": {"max_video_seconds": 0.5},
            "deployment": {"mode": "dedicated", "max_concurrency": 1, "max_queue": 1000},
        },
    ]
}
MODELS = {"images": "fuzz-image", "speech": "fuzz-tts", "transcriptions": "fuzz-asr", "translations": "fuzz-asr"}
_SMALL: dict[str, Any] = {"n": 1, "steps": 1, "num_inference_steps": 1}
IMAGE = image_bytes((64, 64))
IMAGE_URI = "data:image/png;base64," + base64.b64encode(IMAGE).decode()
AUDIO = encode(tone(0.5, rate=16000), 16000, "wav", channels=1)


@pytest.fixture(scope="module")
def media_server(data_dir: Path) -> Iterator[LiveServer]:
    catalog_file = data_dir / "fuzz-media-catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(MEDIA_CATALOG))
    settings = Settings(
        data_dir=data_dir,
        config=catalog_file,
        database_url=f"sqlite:///{data_dir / 'fuzz-media.db'}",
        limits=LimitSettings(
            max_request_bytes=4 * MiB,
            max_data_uri_bytes=1 * MiB,
            decode_timeout_s=decode_time_limit(),
            max_decode_concurrency=2,
        ),
        audio=AudioSettings(max_upload_bytes=1 * MiB),
        jobs=JobSettings(progress_interval_s=1.0),
    )
    server = LiveServer(create_app(settings, load_catalog(catalog_file))).start(timeout=300)
    yield server
    server.stop()


def _steer(case: schemathesis.Case, completed_video: str) -> None:
    """Point the body at the fuzz model of its endpoint, with small counts and real media files."""
    if case.path == "/v1/videos/{video_id}/remix":
        case.path_parameters = {"video_id": completed_video}
    body = case.body
    if not isinstance(body, dict):
        return
    family = case.path.rsplit("/", 1)[-1]
    body["model"] = MODELS.get(family, "fuzz-image" if "/images/" in case.path else "fuzz-video")
    for key, cap in _SMALL.items():
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            body[key] = cap
    if case.path == "/v1/images/edits" and case.media_type == "application/json":
        body["images"] = [{"image_url": IMAGE_URI}]
    elif case.path in ("/v1/images/edits", "/v1/images/variations"):
        body["image"] = Binary(IMAGE)
    elif case.path.startswith("/v1/audio/") and case.path != "/v1/audio/speech":
        body["file"] = Binary(AUDIO)
    elif case.path == "/v1/videos":
        body["size"], body["seconds"] = "64x48", "0.25"
        if isinstance(body.get("input_reference"), Binary):
            body["input_reference"] = Binary(IMAGE)


def _completed_video(url: str) -> str:
    body = {"model": "fuzz-video", "prompt": "a remix source", "size": "64x48", "seconds": "0.25"}
    job = httpx.post(f"{url}/v1/videos", json=body, timeout=30).json()
    deadline = time.monotonic() + 120
    while job["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = httpx.get(f"{url}/v1/videos/{job['id']}", timeout=30).json()
    assert job["status"] == "completed", job
    return str(job["id"])


def test_fuzzed_media_requests_never_get_a_server_error(media_server: LiveServer) -> None:
    openapi = media_server.app.openapi()
    for path, media_types in (
        ("/v1/videos", {"application/json", "multipart/form-data"}),
        ("/v1/images/edits", {"application/json", "multipart/form-data"}),
        ("/v1/images/variations", {"multipart/form-data"}),
        ("/v1/videos/{video_id}/remix", {"application/json"}),
    ):
        assert set(openapi["paths"][path]["post"]["requestBody"]["content"]) == media_types  # fuzzed, not skipped
    schema = schemathesis.openapi.from_dict(openapi).include(path_regex=ENDPOINTS)
    # an operation with two body types is fuzzed with the first one: the JSON edits get a schema of their own
    only_json = copy.deepcopy(openapi)
    body = only_json["paths"]["/v1/images/edits"]["post"]["requestBody"]
    body["content"] = {"application/json": body["content"]["application/json"]}
    json_edits = schemathesis.openapi.from_dict(only_json).include(path_regex=r"^/v1/images/edits$")
    cases = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        json_edits.as_strategy(generation_mode=GenerationMode.POSITIVE),
        json_edits.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    seen: dict[int, int] = {}
    failures: list[str] = []
    completed_video = _completed_video(media_server.url)  # what steered remixes remix

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not os.environ.get("MMSERVE_FUZZ_RANDOM"),
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, steer=st.booleans())
    def check(case: schemathesis.Case, steer: bool) -> None:
        # negative cases are meant to be refused: steering could repair what was broken on purpose
        steered = steer and case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
        if steered:
            _steer(case, completed_video)
        resp = send(case, media_server.url)
        # (speech and video downloads answer binary: read as text only to look for JSON and events)
        status, text = resp.status_code, resp.content.decode("utf-8", "replace")
        seen[status] = seen.get(status, 0) + 1
        failures.extend(conformance_failures(case, resp, steered=steered))
        shown = f"{case.method} {case.path} {case.media_type} {case.body!r:.1500} -> {text[:1500]}"
        assert status < 500, shown
        if status >= 400:
            err = json.loads(text)["error"]  # every error is the OpenAI envelope
            assert set(err) == {"message", "type", "param", "code"}, shown
            assert "Traceback" not in err["message"]
        elif "event: image_" in text or '"error"' in text[:2000]:  # a stream: no failure after it started
            assert '"server_error"' not in text, shown

    check()
    assert not failures, "\n".join(sorted(set(failures)))
    assert seen.get(200, 0) > 0 and sum(n for s, n in seen.items() if 400 <= s < 500) > 0, seen
    assert media_server.health()["status"] == "ok"
