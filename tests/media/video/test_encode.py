"""MP4 encoding (H.264, yuv420p) at the requested size and fps, plus thumbnail and spritesheet."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mmserve.media.video.encode import encode_mp4, probe, spritesheet_jpeg, thumbnail_webp


def _frames(t: int = 12, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_mp4_has_every_frame_at_the_requested_fps(tmp_path: Path) -> None:
    out = tmp_path / "a.mp4"
    info = encode_mp4(_frames(12), 8, out)
    assert (info.frames, info.width, info.height, info.duration) == (12, 64, 48, 1.5)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert float(s.average_rate) == 8.0
        assert len(list(c.decode(s))) == 12
    assert out.read_bytes()[4:8] == b"ftyp" and b"moov" in out.read_bytes()[:200]  # faststart: index first


def test_mp4_is_scaled_to_the_requested_size(tmp_path: Path) -> None:
    out = tmp_path / "b.mp4"
    encode_mp4(_frames(5), 24, out, width=128, height=96)
    info = probe(out)
    assert (info.frames, info.width, info.height, info.fps) == (5, 128, 96, 24.0)


def test_first_frame_survives_encoding(tmp_path: Path) -> None:
    frames = np.zeros((3, 32, 32, 3), dtype=np.uint8)
    frames[0, :, :] = (200, 40, 40)
    out = tmp_path / "c.mp4"
    encode_mp4(frames, 4, out, crf=10)
    with av.open(str(out)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(first.astype(int) - (200, 40, 40)).mean() < 8


@pytest.mark.parametrize(
    ("frames", "kwargs"),
    [
        (np.zeros((0, 8, 8, 3), np.uint8), {}),
        (np.zeros((2, 8, 8), np.uint8), {}),
        (np.zeros((2, 8, 8, 3), np.float32), {}),
        (np.zeros((2, 8, 8, 3), np.uint8), {"width": 9, "height": 8}),
    ],
)
def test_bad_frames_are_refused(tmp_path: Path, frames: np.ndarray, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        encode_mp4(frames, 8, tmp_path / "x.mp4", **kwargs)


def test_thumbnail_and_spritesheet() -> None:
    thumb = Image.open(io.BytesIO(thumbnail_webp(_frames(), width=128, height=96)))
    assert thumb.format == "WEBP" and thumb.size == (128, 96)
    sheet = Image.open(io.BytesIO(spritesheet_jpeg(_frames(12), tiles=10, tile_width=40)))
    assert sheet.format == "JPEG" and sheet.size == (5 * 40, 2 * 30)
    single = Image.open(io.BytesIO(spritesheet_jpeg(_frames(1), tile_width=40)))
    assert single.size == (40, 30)
