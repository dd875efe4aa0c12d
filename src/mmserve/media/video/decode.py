"""Decode and bound user videos (chat ``video_url`` parts) with PyAV: bytes -> a few sampled RGB frames.

A video is far more work per byte than an image: a small file can hold hundreds of thousands
of tiny frames (vLLM's CVE-2026-5497 was a data URL whose frames were all decoded and kept),
declare a huge frame size, or last for hours. So, in the isolated decode worker
(:mod:`mmserve.media.decoder`, killed at its time limit, memory capped):

- the size was capped before anything is parsed (data URIs from their length, links while
  downloading); the container is sniffed from its magic bytes and only that demuxer is used
  (MP4/MOV or WebM/Matroska: no playlist or concat demuxer that opens other files or URLs);
  only common camera/web codecs are decoded;
- the declared frame size, duration and frame count are checked before decoding, and each
  decoded frame's size, time and the running frame count again while decoding (a header may lie);
- only the sampled frames (``fps`` per second of video, at most ``max_frames``, spread evenly)
  are converted to RGB, scaled by FFmpeg straight to what the model's processor keeps; every
  other frame is dropped as soon as it is decoded, so memory is bounded by ``max_frames``.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from mmserve.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError
from mmserve.media.image.decode import ImageInputSize, plan_size

VIDEO_FORMATS = "MP4, MOV or WebM"
# FFmpeg decoder names accepted: what cameras, phones and browsers record
CODECS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg")
_IMAGE_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"RIFF": "a RIFF file (AVI, WAV or WEBP)",
    b"#EXTM3U": "an HLS playlist",
    b"<": "an HTML or XML document",
}
_MOV_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int = 64 * 1024 * 1024
    max_seconds: float = 60.0
    max_side: int = 4096
    max_pixels: int = 4096 * 2160
    max_decoded_frames: int = 7200  # every frame decoded, sampled or not
    timeout_s: float = 30.0  # checked inside the loop too (threads cannot be killed)


@dataclass(frozen=True)
class FrameSampling:
    fps: float = 1.0  # frames kept per second of video
    max_frames: int = 8
    target_side: int | None = None
    input_size: ImageInputSize | None = None


@dataclass
class DecodedVideo:
    frames: list[Image.Image] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # seconds from the start, one per frame
    duration: float = 0.0
    container: str = ""


def sniff_video(data: bytes) -> str | None:
    """The FFmpeg demuxer for these bytes (``mov`` for MP4/MOV, ``matroska`` for WebM/MKV), or None."""
    head = data[:16]
    if head[4:8] == b"ftyp" or head[4:8] in _MOV_ATOMS:
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    return None


def describe(data: bytes) -> str:
    for magic, what in _IMAGE_MAGIC.items():
        if data.lstrip()[: len(magic)] == magic:
            return what
    return "not a video in a supported container"


def decode_video(data: bytes, limits: VideoLimits, sampling: FrameSampling, *, param: str) -> DecodedVideo:
    import av

    if len(data) > limits.max_bytes:
        raise PayloadTooLargeError(
            f"The video is {len(data)} bytes; the limit is {limits.max_bytes} bytes.",
            param=param,
            code="video_too_large",
        )
    demuxer = sniff_video(data)
    if demuxer is None:
        raise UnsupportedMediaError(
            f"The video_url holds {describe(data)}; send a {VIDEO_FORMATS} video"
            + (" (images go in image_url parts)." if "image" in describe(data) else "."),
            param=param,
        )
    deadline = time.monotonic() + limits.timeout_s
    try:
        with av.open(io.BytesIO(data), mode="r", format=demuxer, metadata_errors="ignore") as container:
            if not container.streams.video:
                raise InvalidRequestError("The file has no video track.", param=param, code="invalid_video")
            stream = container.streams.video[0]
            stream.thread_type = "NONE"  # one thread: the worker's core budget, and no decoder threads to leak
            _check_header(container, stream, limits, param)
            duration = _declared_seconds(container, stream)
            picker = _Picker(sampling, duration)
            decoded = 0
            last: tuple[float, Any] | None = None
            out = DecodedVideo(container="mp4/mov" if demuxer == "mov" else "webm/matroska")
            for frame in container.decode(stream):
                decoded += 1
                if decoded > limits.max_decoded_frames:
                    raise InvalidRequestError(
                        f"The video has more than {limits.max_decoded_frames} frames; send a shorter video or "
                        "one with a lower frame rate.",
                        param=param,
                        code="video_too_many_frames",
                    )
                _check_frame(frame.width, frame.height, limits, param)
                t = float(frame.time) if frame.time is not None else (decoded - 1) / 30.0
                if t > limits.max_seconds + 1.0:
                    raise _too_long(limits, param)
                if picker.wants(t):
                    picker.keep(t, _rgb(frame, sampling))
                    last = None
                else:
                    last = (t, frame)  # kept if no frame reaches a sampling time (a duration that lies)
                if time.monotonic() > deadline:
                    raise InvalidRequestError(
                        "The video took too long to decode; send a shorter or smaller one.",
                        param=param,
                        code="video_decode_timeout",
                    )
            if decoded == 0:
                raise InvalidRequestError("The video has no frames that decode.", param=param, code="invalid_video")
            if not picker.kept and last is not None:
                picker.keep(last[0], _rgb(last[1], sampling))
            out.times, out.frames = picker.result()
            out.duration = duration if duration is not None else out.times[-1]
            return out
    except (InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError):
        raise
    except (av.FFmpegError, ValueError, OSError, EOFError, IndexError):
        raise InvalidRequestError(
            f"The video could not be decoded as {'MP4/MOV' if demuxer == 'mov' else 'WebM'}; it may be corrupt or "
            "truncated.",
            param=param,
            code="invalid_video",
        ) from None


def _check_header(container: Any, stream: Any, limits: VideoLimits, param: str) -> None:
    name = stream.codec_context.name if stream.codec_context is not None else None
    if name not in CODECS:
        raise UnsupportedMediaError(
            f"The video is encoded with '{name}', which is not accepted; re-encode it as H.264, HEVC, VP8, VP9 or AV1.",
            param=param,
            code="unsupported_video_codec",
        )
    w, h = stream.codec_context.width, stream.codec_context.height
    if w and h:
        _check_frame(w, h, limits, param)
    seconds = _declared_seconds(container, stream)
    if seconds is not None and seconds > limits.max_seconds + 1.0:
        raise _too_long(limits, param)
    if stream.frames and stream.frames > limits.max_decoded_frames:
        raise InvalidRequestError(
            f"The video declares {stream.frames} frames; at most {limits.max_decoded_frames} are accepted. "
            "Send a shorter video or one with a lower frame rate.",
            param=param,
            code="video_too_many_frames",
        )


def _check_frame(w: int, h: int, limits: VideoLimits, param: str) -> None:
    if w > limits.max_side or h > limits.max_side or w * h > limits.max_pixels:
        raise PayloadTooLargeError(
            f"The video's frames are {w}x{h}; the limit is {limits.max_side} pixels a side and "
            f"{limits.max_pixels} pixels a frame.",
            param=param,
            code="video_too_large",
        )
    if w < 2 or h < 2:
        raise InvalidRequestError(f"The video's frames are {w}x{h}.", param=param, code="invalid_video")


def _declared_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000
    return None


def _too_long(limits: VideoLimits, param: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"The video is longer than this model's limit of {limits.max_seconds:g} seconds; send a shorter clip.",
        param=param,
        code="video_too_long",
    )


def _rgb(frame: Any, sampling: FrameSampling) -> Image.Image:
    """The frame in RGB, scaled by FFmpeg straight to what the model keeps (never up)."""
    size = plan_size(frame.width, frame.height, target_side=sampling.target_side, input_size=sampling.input_size)
    w, h = size if size is not None else (frame.width, frame.height)
    return Image.fromarray(frame.reformat(width=w, height=h, format="rgb24").to_ndarray(), "RGB")


class _Picker:
    """Which decoded frames to keep: ``fps`` per second, at most ``max_frames``, spread over the clip.

    With a known duration the kept times are the centres of ``n`` equal slices of the clip.
    Without one (some WebM recordings), frames are kept every ``1 / fps`` seconds and, past
    ``max_frames``, every other kept frame is dropped and the interval doubled: still evenly
    spread, and never more than ``max_frames`` frames held.
    """

    def __init__(self, sampling: FrameSampling, duration: float | None) -> None:
        self.max = max(1, sampling.max_frames)
        self.kept: list[tuple[float, Image.Image]] = []
        if duration is not None and duration > 0:
            n = max(1, min(self.max, math.ceil(duration * sampling.fps - 1e-9)))
            self.targets: list[float] | None = [(k + 0.5) * duration / n for k in range(n)]
        else:
            self.targets = None
            self.step = 1.0 / max(sampling.fps, 1e-6)
            self.next = 0.0

    def wants(self, t: float) -> bool:
        if self.targets is not None:
            return bool(self.targets) and t + 1e-6 >= self.targets[0]
        return t + 1e-6 >= self.next

    def keep(self, t: float, image: Image.Image) -> None:
        self.kept.append((t, image))
        if self.targets is not None:
            while self.targets and self.targets[0] <= t + 1e-6:
                self.targets.pop(0)
            return
        self.next = t + self.step
        if len(self.kept) > self.max:
            self.kept = self.kept[::2]
            self.step *= 2
            self.next = self.kept[-1][0] + self.step

    def result(self) -> tuple[list[float], list[Image.Image]]:
        return [t for t, _ in self.kept], [im for _, im in self.kept]
