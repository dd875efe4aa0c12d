"""One image (or video) decode as plain data: what the server sends a decode worker and what comes back.

The same :func:`run_job` runs in a worker process (``decode_isolation = "process"``) or in a
thread. Across the process boundary a job travels as a small JSON header plus the raw bytes,
and a result as JSON plus raw pixels: never a pickle, because a worker that parsed hostile
bytes must not be able to hand the server an object that runs code when loaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from mmserve.errors import InvalidRequestError, MMServeError, PayloadTooLargeError, UnsupportedMediaError
from mmserve.media.datauri import decode_base64
from mmserve.media.image.decode import SOURCE_PIXELS, ImageInputSize, ImageLimits, decode_image
from mmserve.media.video.decode import DecodedVideo, FrameSampling, VideoLimits, decode_video

MAX_HEADER_BYTES = 64 * 1024
_MODES = {"RGB": 3, "RGBA": 4}
_ERRORS: dict[int, type[MMServeError]] = {
    400: InvalidRequestError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaError,
}


@dataclass(frozen=True)
class VideoSpec:
    """A video decode: the video's bounds and which frames to keep (and how small)."""

    limits: VideoLimits
    sampling: FrameSampling


DecodeResult = Image.Image | DecodedVideo


@dataclass(frozen=True)
class DecodeJob:
    payload: bytes | memoryview  # the image's bytes, or (base64=True) the base64 text of a data URI as ASCII
    limits: ImageLimits
    param: str
    base64: bool = False
    target_side: int | None = None
    input_size: ImageInputSize | None = None
    keep_alpha: bool = False
    video: VideoSpec | None = None  # set: the payload is a video, decoded into sampled frames

    @property
    def what(self) -> str:
        return "video" if self.video else "image"

    @property
    def timeout_s(self) -> float | None:
        """The job's own time limit (videos), else the decoder's."""
        return self.video.limits.timeout_s if self.video else None

    @property
    def max_reply_bytes(self) -> int:
        if self.video is None:
            return 4 * self.limits.max_pixels
        return 3 * self.video.limits.max_pixels * self.video.sampling.max_frames


def run_job(job: DecodeJob) -> DecodeResult:
    data = decode_base64(job.payload, param=job.param) if job.base64 else bytes(job.payload)  # bytes: not copied
    if job.video is not None:
        return decode_video(data, job.video.limits, job.video.sampling, param=job.param)
    return decode_image(
        data,
        job.limits,
        param=job.param,
        target_side=job.target_side,
        input_size=job.input_size,
        keep_alpha=job.keep_alpha,
    )


# ------------------------------------------------------------------ wire format


def job_header(job: DecodeJob, *, payload_fd: bool = False) -> bytes:
    """The job's JSON header; ``payload_fd``: its payload comes in a memory file (see media/worker.py)."""
    return json.dumps(
        {
            "payload_fd": payload_fd,
            "limits": asdict(job.limits),
            "param": job.param,
            "base64": job.base64,
            "target_side": job.target_side,
            "input_size": asdict(job.input_size) if job.input_size else None,
            "keep_alpha": job.keep_alpha,
            "video": _video_header(job.video),
        }
    ).encode()


def _video_header(spec: VideoSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    sampling = asdict(spec.sampling)
    return {"limits": asdict(spec.limits), "sampling": sampling}


def _video_spec(raw: dict[str, Any] | None) -> VideoSpec | None:
    if raw is None:
        return None
    sampling = dict(raw["sampling"])
    size = sampling.get("input_size")
    sampling["input_size"] = ImageInputSize(**size) if size else None
    return VideoSpec(VideoLimits(**raw["limits"]), FrameSampling(**sampling))


def job_from_wire(h: dict[str, Any], payload: bytes) -> DecodeJob:
    """The job of a parsed header (``json.loads(job_header(...))``) and its payload."""
    limits = h["limits"]
    limits["formats"] = tuple(limits["formats"])
    size = h.get("input_size")
    return DecodeJob(
        payload=payload,
        limits=ImageLimits(**limits),
        param=h["param"],
        base64=bool(h["base64"]),
        target_side=h.get("target_side"),
        input_size=ImageInputSize(**size) if size else None,
        keep_alpha=bool(h.get("keep_alpha")),
        video=_video_spec(h.get("video")),
    )


def result_to_wire(result: DecodeResult | MMServeError) -> tuple[bytes, bytes]:
    if isinstance(result, MMServeError):
        head: dict[str, Any] = {
            "ok": False,
            "status": result.status_code,
            "code": result.code,
            "message": result.message,
        }
        return json.dumps(head).encode(), b""
    if isinstance(result, DecodedVideo):
        frames = [
            {"mode": f.mode, "size": list(f.size), "t": t} for f, t in zip(result.frames, result.times, strict=True)
        ]
        video = {"duration": result.duration, "container": result.container, "frames": frames}
        return json.dumps({"ok": True, "video": video}).encode(), b"".join(f.tobytes() for f in result.frames)
    source = result.info.get(SOURCE_PIXELS)
    head = {"ok": True, "mode": result.mode, "size": list(result.size), "source_pixels": source}
    return json.dumps(head).encode(), result.tobytes()


def result_from_wire(header: bytes, pixels: bytes, job: DecodeJob) -> DecodeResult:
    """Rebuild the image (or the video's frames), checking everything the worker says against the job's limits."""
    h = json.loads(header)
    if not h.get("ok"):
        cls = _ERRORS.get(h.get("status"), InvalidRequestError)
        code = h.get("code") if isinstance(h.get("code"), str) else None
        raise cls(str(h.get("message", f"The {job.what} cannot be decoded."))[:500], param=job.param, code=code)
    if job.video is not None:
        return _video_from_wire(h["video"], pixels, job.video)
    mode, size = h["mode"], h["size"]
    w, h_ = int(size[0]), int(size[1])
    lim = job.limits
    if mode not in _MODES or not (0 < w <= lim.max_side and 0 < h_ <= lim.max_side):
        raise ValueError("decode worker returned an impossible image")
    if len(pixels) != w * h_ * _MODES[mode]:
        raise ValueError("decode worker returned the wrong number of bytes")
    source = h.get("source_pixels")
    if not isinstance(source, int) or not w * h_ <= source <= lim.max_pixels:
        raise ValueError("decode worker returned an impossible source size")
    image = Image.frombytes(mode, (w, h_), pixels)
    image.info[SOURCE_PIXELS] = source
    return image


def _video_from_wire(h: dict[str, Any], pixels: bytes, spec: VideoSpec) -> DecodedVideo:
    frames = h["frames"]
    if not isinstance(frames, list) or not 0 < len(frames) <= max(1, spec.sampling.max_frames):
        raise ValueError("decode worker returned an impossible number of frames")
    out = DecodedVideo(duration=float(h["duration"]), container=str(h["container"])[:32])
    offset = 0
    for f in frames:
        w, h_ = int(f["size"][0]), int(f["size"][1])
        if f["mode"] != "RGB" or not (0 < w <= spec.limits.max_side and 0 < h_ <= spec.limits.max_side):
            raise ValueError("decode worker returned an impossible frame")
        n = w * h_ * 3
        out.frames.append(Image.frombytes("RGB", (w, h_), pixels[offset : offset + n]))
        out.times.append(float(f["t"]))
        offset += n
    if offset != len(pixels):
        raise ValueError("decode worker returned the wrong number of bytes")
    return out
