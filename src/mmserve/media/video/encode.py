"""Encode generated frames: H.264 MP4 (yuv420p, faststart) with PyAV, plus a thumbnail and a spritesheet.

Blocking: callers run these in worker threads. Frames are ``uint8`` arrays of shape
``(T, H, W, 3)`` (RGB). The MP4 has exactly ``T`` frames at ``fps`` (pts = frame index in a
``1/fps`` time base), is scaled to the requested size when the frames differ from it, and
carries ``+faststart`` (the index up front) so that players can start and seek over Range
requests before the whole file has arrived.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    width: int
    height: int
    fps: float
    duration: float
    codec: str
    pix_fmt: str


def encode_mp4(
    frames: Any,
    fps: int,
    out: Path,
    *,
    width: int | None = None,
    height: int | None = None,
    crf: int = 20,
    preset: str = "veryfast",
) -> VideoInfo:
    """Write ``frames`` as an H.264 MP4 at ``out`` (scaled to ``width`` x ``height`` if given)."""
    import av

    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1, not {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, not {arr.dtype}")
    w, h = width or arr.shape[2], height or arr.shape[1]
    if w % 2 or h % 2:
        raise ValueError(f"yuv420p needs even dimensions, not {w}x{h}")
    with av.open(str(out), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {"crf": str(crf), "preset": preset}
        for i, rgb in enumerate(arr):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(width=w, height=h, format="yuv420p", interpolation="BICUBIC")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return VideoInfo(len(arr), w, h, float(fps), len(arr) / fps, "h264", "yuv420p")


def probe(path: Path) -> VideoInfo:
    """Decode the whole file and count its frames (for checks and tests)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        rate = float(stream.average_rate or stream.base_rate or 0)
        return VideoInfo(
            frames=count,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=rate,
            duration=count / rate if rate else 0.0,
            codec=stream.codec_context.name,
            pix_fmt=str(stream.codec_context.pix_fmt),
        )


def thumbnail_webp(frames: Any, *, width: int, height: int, quality: int = 80) -> bytes:
    """The middle frame as a WebP image at the video's size (what OpenAI's ``thumbnail`` variant is)."""
    from PIL import Image

    arr = np.asarray(frames)
    img = Image.fromarray(arr[len(arr) // 2]).resize((width, height), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=quality)
    return buf.getvalue()


def spritesheet_jpeg(frames: Any, *, tiles: int = 10, tile_width: int = 160, quality: int = 80) -> bytes:
    """Up to ``tiles`` evenly spaced frames in a grid (OpenAI's ``spritesheet`` variant is a JPEG)."""
    from PIL import Image

    arr = np.asarray(frames)
    count = min(tiles, len(arr))
    picks = [round(i * (len(arr) - 1) / max(1, count - 1)) for i in range(count)]
    th = max(2, round(tile_width * arr.shape[1] / arr.shape[2]))
    cols = min(count, 5)
    rows = math.ceil(count / cols)
    sheet = Image.new("RGB", (cols * tile_width, rows * th))
    for n, idx in enumerate(picks):
        tile = Image.fromarray(arr[idx]).resize((tile_width, th), Image.Resampling.BILINEAR)
        sheet.paste(tile, ((n % cols) * tile_width, (n // cols) * th))
    buf = io.BytesIO()
    sheet.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
