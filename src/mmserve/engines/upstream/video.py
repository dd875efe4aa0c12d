"""Video jobs on a third-party provider (OpenAI's Videos API): submit, poll, download, on mmserve's job store.

A job of an upstream card runs in mmserve's job runner like a local one. The engine submits it
(``POST /videos``; multipart with the reference image mmserve decoded and bounded, re-encoded as
PNG), and before anything else keeps the provider's job id with mmserve's job (the runner's
``checkpoint``, a row update): if mmserve stops or crashes, the job is taken up again on the next
start and the engine goes on polling the same remote job instead of paying for a second one.
It polls ``GET /videos/{id}`` every ``poll_interval_s`` (the provider's progress is the job's), then
downloads the file (``GET /videos/{id}/content``, or a link in the video object, fetched
SSRF-safely), decodes it and hands the frames to the runner, which stores the MP4, thumbnail and
spritesheet as mmserve artifacts like any other job's. A job the provider fails fails with its
short reason (code ``upstream_job_failed``).

Decoding is PyAV in a worker thread, bounded in bytes (``max_video_bytes``), frames and frame
size; frames are scaled to the job's size as they are decoded and picked evenly to its frame count.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

from mmserve.engines.base import CheckpointCallback, ProgressCallback, VideoEngine
from mmserve.engines.registry import require
from mmserve.engines.types import VideoGenInput, VideoGenOutput
from mmserve.engines.upstream.base import UpstreamEngine
from mmserve.engines.upstream.files import ProviderFiles
from mmserve.engines.upstream.options import UpstreamOptions
from mmserve.errors import UpstreamError, UpstreamTimeoutError

RESUME_KEY = "upstream_id"


class UpstreamVideoOptions(UpstreamOptions):
    poll_interval_s: float = Field(default=2.0, gt=0, description="How often the provider's job is polled.")
    max_wait_s: float = Field(default=3600.0, gt=0, description="Longest a provider's job may take.")
    max_video_bytes: int = Field(default=512 * 1024 * 1024, ge=1024, description="Largest video file taken.")
    download_timeout_s: float = Field(default=300.0, gt=0)


class UpstreamVideoEngine(UpstreamEngine, VideoEngine):
    Options = UpstreamVideoOptions
    options: UpstreamVideoOptions

    def load(self) -> None:
        require("av", "upstream-video")
        super().load()

    async def generate(
        self,
        request: VideoGenInput,
        progress: ProgressCallback | None = None,
        checkpoint: CheckpointCallback | None = None,
    ) -> VideoGenOutput:
        remote_id = request.resume.get(RESUME_KEY)
        if not isinstance(remote_id, str) or not remote_id:
            remote_id = await self._submit(request)
            if checkpoint is not None:
                await checkpoint({RESUME_KEY: remote_id})
        video = await self._wait(remote_id, progress)
        data = await self._download(remote_id, video)
        frames = await asyncio.to_thread(_frames, data, request, self.upstream.bad_response)
        return VideoGenOutput(frames=frames, fps=request.fps)

    async def _submit(self, request: VideoGenInput) -> str:
        fields: dict[str, Any] = {
            "model": self.remote_model,
            "prompt": request.prompt,
            "seconds": f"{request.num_frames / request.fps:g}",
            "size": f"{request.width}x{request.height}",
        }
        if request.image is not None:
            png = await asyncio.to_thread(_png, request.image)
            files = {"input_reference": ("reference.png", png, "image/png")}
            answer = await self.upstream.request_json(
                "POST", "/videos", data={k: str(v) for k, v in fields.items()}, files=files
            )
        else:
            answer = await self.upstream.request_json("POST", "/videos", json=fields)
        remote_id = answer.get("id")
        if not isinstance(remote_id, str) or not remote_id or len(remote_id) > 200:
            raise self.upstream.bad_response("a video job without an id")
        return remote_id

    async def _wait(self, remote_id: str, progress: ProgressCallback | None) -> dict[str, Any]:
        """Poll the provider's job until it is completed (its object) or failed (raised)."""
        opts = self.options
        deadline = time.monotonic() + opts.max_wait_s
        upstream = self.upstream
        while True:
            video = await upstream.request_json("GET", f"/videos/{remote_id}")
            status = video.get("status")
            if status == "completed":
                return video
            if status == "failed":
                error = video.get("error")
                error = error if isinstance(error, dict) else {}
                reason = upstream.clip(str(error.get("message") or "no reason given"))
                raise UpstreamError(
                    f"The provider '{upstream.name}' of '{self.card.id}' failed this video: {reason}",
                    code="upstream_job_failed",
                )
            if status not in ("queued", "in_progress"):
                raise upstream.bad_response(f"a video job in an unknown state ({upstream.clip(str(status))[:40]})")
            if progress is not None:
                done = video.get("progress")
                progress(min(max(float(done), 0.0), 100.0) / 100 if isinstance(done, int | float) else 0.0)
            if time.monotonic() > deadline:
                raise UpstreamTimeoutError(
                    f"The provider '{upstream.name}' of '{self.card.id}' did not finish this video "
                    f"within {opts.max_wait_s:g} s.",
                )
            await asyncio.sleep(opts.poll_interval_s)

    async def _download(self, remote_id: str, video: dict[str, Any]) -> bytes:
        link = _link(video)
        limit = self.options.max_video_bytes
        if link is not None:
            files = ProviderFiles(self.upstream, self.media, max_bytes=limit, timeout_s=self.options.download_timeout_s)
            return await files.download(link, "the video")
        async with self.upstream.stream("GET", f"/videos/{remote_id}/content", params={"variant": "video"}) as resp:
            return await self.upstream.read(resp, limit)


def _link(video: dict[str, Any]) -> str | None:
    """A download link in the video object (DigitalOcean's ``output.url``, or ``url``), if the provider gives one."""
    output = video.get("output")
    for candidate in (output.get("url") if isinstance(output, dict) else None, video.get("url")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _frames(data: bytes, request: VideoGenInput, bad: Callable[[str], UpstreamError]) -> np.ndarray:
    """The video's frames at the job's size, ``request.num_frames`` of them picked evenly (blocking)."""
    import av

    width, height = request.width, request.height
    max_frames = max(request.num_frames * 8, 64)
    frames: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise bad("a video file without a video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            ctx = stream.codec_context
            if ctx.width * ctx.height > 8192 * 8192:
                raise bad(f"a video of {ctx.width}x{ctx.height} pixels")
            for frame in container.decode(stream):
                if len(frames) >= max_frames:
                    raise bad(f"a video of more than {max_frames} frames for a {request.num_frames} frame job")
                frames.append(frame.to_ndarray(width=width, height=height, format="rgb24"))
    except UpstreamError:
        raise
    except Exception:
        raise bad("a video file that does not decode") from None
    if not frames:
        raise bad("a video file without frames")
    picks = np.linspace(0, len(frames) - 1, request.num_frames).round().astype(int)
    return np.stack([frames[i] for i in picks])
