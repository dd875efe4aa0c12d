"""DO's documented video flow (seeds/000): curl submit with size and fps, poll /v1/video/generations/{id}, fetch.

The request body is the seed's, with the host and the model changed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import httpx
import pytest

from tests.helpers.videos import mp4_info

SEED_BODY = {
    "model": "wan2.2-i2v-a14b",
    "prompt": "Two anthropomorphic cats in boxing gear fight intensely on a spotlighted stage",
    "size": "1280x720",
    "fps": 16,
}


def _curl(*args: str) -> bytes:
    return subprocess.run(["curl", "-sS", "--fail-with-body", *args], check=True, capture_output=True).stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_do_curl_flow(video_url: str) -> None:
    body = {**SEED_BODY, "model": "tiny-video"}
    headers = ["-H", "Authorization: Bearer unused", "-H", "Content-Type: application/json"]
    job = json.loads(_curl("-X", "POST", f"{video_url}/v1/videos", *headers, "-d", json.dumps(body)))
    assert job["id"].startswith("video_") and job["status"] in ("queued", "in_progress")
    deadline = time.monotonic() + 120
    while True:
        result = json.loads(_curl(f"{video_url}/v1/video/generations/{job['id']}", "-H", "Authorization: Bearer x"))
        if result["status"] in ("completed", "failed"):
            break
        assert result["output"] is None
        assert time.monotonic() < deadline, "video did not finish"
        time.sleep(0.3)
    assert result["status"] == "completed" and result["error"] is None and result["id"] == job["id"]
    assert result["size"] == "1280x720" and result["fps"] == 16
    # the presigned URL in the completed status (what DO's Python example downloads)
    signed = httpx.get(result["output"]["url"])
    assert signed.status_code == 200 and signed.headers["content-type"] == "video/mp4"
    # ...and the content endpoint, which "returns Content-Type: video/mp4"
    direct = _curl(f"{video_url}/v1/videos/{job['id']}/content", "-H", "Authorization: Bearer x")
    assert direct == signed.content
    # the card's default duration (0.25 s) at the requested 16 fps and size
    assert mp4_info(direct) == (4, 1280, 720, 16.0, "h264")
    assert httpx.get(result["output"]["thumbnail_url"]).headers["content-type"] == "image/webp"


def test_do_style_submit_route_and_tampered_links(video_url: str) -> None:
    r = httpx.post(
        f"{video_url}/v1/video/generations",
        json={"model": "tiny-video", "prompt": "cats", "size": "64x48", "fps": 8, "seconds": 1},
    )
    assert r.status_code == 200 and r.json()["job_id"] == r.json()["id"]
    vid = r.json()["id"]
    deadline = time.monotonic() + 120
    while (result := httpx.get(f"{video_url}/v1/video/generations/{vid}").json())["status"] != "completed":
        assert result["status"] != "failed" and time.monotonic() < deadline
        time.sleep(0.2)
    url = result["output"]["url"]
    assert httpx.get(url).status_code == 200
    assert httpx.get(url.replace("signature=", "signature=0")).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403
    assert httpx.get(f"{video_url}/v1/video/generations/video_unknown").status_code == 404
