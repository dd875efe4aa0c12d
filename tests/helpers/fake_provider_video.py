"""The fake provider's video jobs (OpenAI's Videos API; see :mod:`tests.helpers.fake_provider`).

``POST /v1/videos`` (JSON, or multipart with an ``input_reference`` image) queues a job; each
``GET /v1/videos/{id}`` moves it on: queued -> in_progress (50 %) -> completed, unless
``hold_videos`` is set (it stays in progress until cleared). A prompt containing "fail" fails at
the first poll, with an error naming the key (mmserve must blank it). ``GET
/v1/videos/{id}/content`` is an H.264 MP4 of the job's size and length at VIDEO_FPS; with
``video_links`` the completed object carries a ``url`` to it instead (``link_base`` replaces
the origin of that link).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from mmserve.media.video.encode import encode_mp4

if TYPE_CHECKING:
    from tests.helpers.fake_provider import FakeProvider

VIDEO_FPS = 8


def add_video_routes(fake: FakeProvider) -> None:
    app = fake.app

    @app.post("/v1/videos")
    async def create(request: Request) -> Any:
        if request.headers.get("content-type", "").startswith("multipart/"):
            form = await request.form()
            body: dict[str, Any] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            upload = form.get("input_reference")
            if upload is not None and not isinstance(upload, str):
                with Image.open(io.BytesIO(await upload.read())) as img:
                    body["input_reference"] = {"size": img.size, "format": img.format}
        else:
            body = await request.json()
        fake.requests.append(body)
        refused = await fake.check(request)
        if refused is not None:
            return refused
        job = {
            "id": f"vid_{len(fake.videos) + 1}",
            "object": "video",
            "model": body["model"],
            "status": "queued",
            "progress": 0,
            "seconds": str(body.get("seconds", "4")),
            "size": body.get("size", "64x64"),
            "prompt": body["prompt"],
        }
        fake.videos[job["id"]] = job
        return job

    @app.get("/v1/videos/{video_id}")
    async def poll(video_id: str, request: Request) -> Any:
        refused = await fake.check(request)
        if refused is not None:
            return refused
        job = fake.videos.get(video_id)
        if job is None:
            return JSONResponse({"error": {"message": "no such video"}}, status_code=404)
        if job["status"] == "queued":
            job.update(status="in_progress", progress=50)
        elif job["status"] == "in_progress" and "fail" in job["prompt"]:
            job.update(status="failed", error={"code": "moderation_blocked", "message": f"refused ({fake.key})"})
        elif job["status"] == "in_progress" and not fake.hold_videos:
            job.update(status="completed", progress=100)
            if fake.video_links:
                name = f"{video_id}.mp4"
                fake.files[name] = (_mp4(job), "video/mp4")
                job["url"] = f"{fake.link_base or fake.url}/files/{name}"
        return job

    @app.get("/v1/videos/{video_id}/content")
    async def content(video_id: str, request: Request) -> Any:
        refused = await fake.check(request)
        if refused is not None:
            return refused
        job = fake.videos[video_id]
        fake.downloads.append(video_id)
        return Response(_mp4(job), media_type="video/mp4")


def _mp4(job: dict[str, Any]) -> bytes:
    w, h = (int(x) for x in str(job["size"]).split("x"))
    count = max(1, round(float(job["seconds"]) * VIDEO_FPS))
    frames = np.zeros((count, h, w, 3), np.uint8)
    frames[..., 1] = np.linspace(0, 255, count, dtype=np.uint8)[:, None, None]  # green rises frame by frame
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "v.mp4"
        encode_mp4(frames, VIDEO_FPS, out)
        return out.read_bytes()
