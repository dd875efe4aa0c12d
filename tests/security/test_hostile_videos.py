"""Hostile and unusual videos in chat video_url parts: each refused with the right 4xx, the server unharmed.

vLLM's CVE-2026-5497 was a data URL whose frames were all decoded and kept: here the frame
count is checked from the header and while decoding, only sampled frames are kept, and the
decode runs in a killable, memory-capped worker process.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from tests.helpers.clips import clip, video_part, video_uri
from tests.helpers.images import image_bytes
from tests.security.conftest import SecurityServer, Targets, error_of

PARAM = "messages[0].content[1].video_url"


def _post(server: SecurityServer, url: str, model: str = "demo-vlm") -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What happens?"}, video_part(url)]}],
        "max_tokens": 2,
    }
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)


def _raw(data: bytes, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


# (case, data URI factory, status, code, words the message must contain)
Case = tuple[str, Callable[[], str], int, str, str]
REFUSED: list[Case] = [
    # the CVE's shape: a short clip of very many tiny frames; MP4 declares its count, Matroska does not
    ("3000 frames declared", lambda: video_uri(clip(3, 1000, (16, 16))), 400, "video_too_many_frames", "600"),
    ("3000 frames counted", lambda: video_uri(clip(3, 1000, (16, 16), "mkv"), "mkv"), 400, "video_too_many_frames", ""),
    ("longer than the card", lambda: video_uri(clip(10, 1)), 400, "video_too_long", "5 seconds"),
    ("frames too large", lambda: video_uri(clip(0.5, 2, (2000, 16))), 413, "video_too_large", "2000x16"),
    ("truncated MP4", lambda: video_uri(clip(4, 8)[:700]), 400, "invalid_video", "truncated"),
    ("audio only", lambda: video_uri(clip(2, audio_only=True)), 400, "invalid_video", "no video track"),
    (
        "lossless codec",
        lambda: video_uri(clip(1, 2, codec="ffv1", container="mkv"), "mkv"),
        415,
        "unsupported_video_codec",
        "",
    ),
    ("AVI", lambda: _raw(clip(1, 4, container="avi"), "video/x-msvideo"), 415, "unsupported_media_type", "MP4"),
    (
        "HLS playlist",
        lambda: _raw(b"#EXTM3U\n#EXT-X-TARGETDURATION:10\nhttp://127.0.0.1/a.ts\n"),
        415,
        "unsupported_media_type",
        "HLS",
    ),
    ("a PNG as video", lambda: _raw(image_bytes()), 415, "unsupported_media_type", "image_url"),
    ("image MIME type", lambda: _raw(image_bytes(), "image/png"), 400, "invalid_video_url", "image_url"),
    ("text MIME type", lambda: _raw(b"hello", "text/plain"), 400, "invalid_video_url", "text/plain"),
    ("huge base64", lambda: "data:video/mp4;base64," + "A" * 1_500_000, 413, "data_uri_too_large", ""),
    ("bad base64", lambda: "data:video/mp4;base64,AAA", 400, "invalid_base64", "padding"),
]


@pytest.mark.parametrize(("name", "make", "status", "code", "words"), REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_video_gets_the_right_4xx(
    sec: SecurityServer, name: str, make: Callable[[], str], status: int, code: str, words: str
) -> None:
    err = error_of(_post(sec, make()), status)
    assert err["param"] == PARAM and err["code"] == code, err
    assert words in err["message"] and "Traceback" not in err["message"] and "av." not in err["message"]


def test_video_links_are_ssrf_checked_and_bounded(sec: SecurityServer, targets: Targets) -> None:
    targets.private.routes["/clip.mp4"] = (200, {"Content-Type": "video/mp4"}, clip(1, 4))
    err = error_of(_post(sec, f"http://127.0.0.1:{targets.port}/clip.mp4"), 422)
    assert err["code"] == "url_refused" and err["param"] == PARAM
    assert targets.private.paths() == []  # never connected
    targets.allowed.routes["/big.mp4"] = (200, {"Content-Type": "video/mp4"}, b"\0" * (600 * 1024))
    err = error_of(_post(sec, f"http://127.0.0.2:{targets.port}/big.mp4"), 413)
    assert err["code"] == "url_content_too_large"
    targets.allowed.routes["/clip.mp4"] = (200, {"Content-Type": "video/mp4"}, clip(2, 4))
    ok = _post(sec, f"http://127.0.0.2:{targets.port}/clip.mp4")
    assert ok.status_code == 200, ok.text
    assert ok.json()["usage"]["prompt_tokens_details"]["video_frames"] == 2


def test_a_base64_only_card_refuses_video_links(sec: SecurityServer) -> None:
    err = error_of(_post(sec, "http://127.0.0.2/clip.mp4", model="vlm-base64-only"), 400)
    assert err["code"] == "model_capability" and "capabilities.video" in err["message"]


def test_the_server_still_answers_videos_after_the_hostile_ones(sec: SecurityServer) -> None:
    resp = _post(sec, video_uri(clip(4, 8)))
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["prompt_tokens_details"]["video_frames"] == 4
    assert sec.live.health()["status"] == "ok"
