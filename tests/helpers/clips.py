"""Videos as users send them (and as attackers do), encoded with PyAV: MP4, MOV, WebM."""

from __future__ import annotations

import base64
import io
from fractions import Fraction

import av
import numpy as np

_FORMAT = {"mp4": "mp4", "mov": "mov", "webm": "webm", "mkv": "matroska", "avi": "avi"}
_CODEC = {"mp4": "libx264", "mov": "libx264", "webm": "libvpx", "mkv": "libx264", "avi": "mpeg4"}
_MIME = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm", "mkv": "video/x-matroska"}


def clip(
    seconds: float = 2.0,
    fps: int = 8,
    size: tuple[int, int] = (64, 48),
    container: str = "mp4",
    codec: str | None = None,
    audio_only: bool = False,
) -> bytes:
    """A clip whose frame i is a flat grey of level 10 + 20 * (second of i): frame times are readable back."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=_FORMAT[container]) as out:
        if audio_only:
            _audio(out, seconds)
        else:
            _frames(out, seconds, fps, size, codec or _CODEC[container])
    return buf.getvalue()


def _audio(out: av.container.OutputContainer, seconds: float) -> None:
    stream = out.add_stream("aac", rate=16000)
    for i in range(int(seconds * 16000 / 1024)):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        frame.pts = i * 1024
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def _frames(out: av.container.OutputContainer, seconds: float, fps: int, size: tuple[int, int], codec: str) -> None:
    stream = out.add_stream(codec, rate=Fraction(fps))
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    for i in range(round(seconds * fps)):
        level = min(250, 10 + 20 * int(i / fps))
        frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), level, np.uint8), format="rgb24")
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def video_uri(data: bytes, container: str = "mp4") -> str:
    return f"data:{_MIME.get(container, 'video/mp4')};base64," + base64.b64encode(data).decode()


def video_part(url: str) -> dict:
    return {"type": "video_url", "video_url": {"url": url}}
