"""Bounded video decoding: containers sniffed, frames sampled evenly, every bound refused with its code."""

from __future__ import annotations

import itertools

import pytest

from mmserve.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError
from mmserve.media.image.decode import ImageInputSize
from mmserve.media.video.decode import FrameSampling, VideoLimits, decode_video, sniff_video
from tests.helpers.clips import clip
from tests.helpers.images import image_bytes

LIMITS = VideoLimits(max_seconds=10, max_side=1024, max_pixels=1024 * 768, max_decoded_frames=500, timeout_s=30)


def _levels(video) -> list[int]:  # the grey level of each kept frame: 10 + 20 * its second
    return [round(sum(f.getpixel((5, 5))) / 3) for f in video.frames]


@pytest.mark.parametrize("container", ["mp4", "mov", "webm", "mkv"])
def test_containers_decode_and_one_frame_per_second_is_kept(container: str) -> None:
    out = decode_video(clip(4, 8, container=container), LIMITS, FrameSampling(fps=1, max_frames=8), param="v")
    assert len(out.frames) == 4 and out.duration == pytest.approx(4, abs=0.2)
    assert [int(t) for t in out.times] == [0, 1, 2, 3]  # the centres of four 1 s slices
    assert all(abs(level - expected) <= 8 for level, expected in zip(_levels(out), [10, 30, 50, 70], strict=True))
    assert all(f.size == (64, 48) and f.mode == "RGB" for f in out.frames)


def test_max_frames_spreads_the_samples_over_the_whole_clip() -> None:
    out = decode_video(clip(8, 4), LIMITS, FrameSampling(fps=2, max_frames=4), param="v")
    assert len(out.frames) == 4
    assert [int(t) for t in out.times] == [1, 3, 5, 7]  # centres of four 2 s slices
    assert all(abs(level - expected) <= 8 for level, expected in zip(_levels(out), [30, 70, 110, 150], strict=True))


def test_frames_are_scaled_to_what_the_model_keeps() -> None:
    out = decode_video(
        clip(1, 2, size=(640, 480)), LIMITS, FrameSampling(input_size=ImageInputSize(shortest_edge=56)), param="v"
    )
    assert out.frames[0].size == (75, 56)


def test_sniffing() -> None:
    assert sniff_video(clip(container="mp4")) == "mov" and sniff_video(clip(container="webm")) == "matroska"
    assert sniff_video(image_bytes()) is None


@pytest.mark.parametrize(
    ("data", "limits", "error", "code", "words"),
    [
        (image_bytes(), LIMITS, UnsupportedMediaError, "unsupported_media_type", "PNG image"),
        (b"#EXTM3U\n#EXT-X-VERSION:3\nhttp://127.0.0.1/a.ts\n", LIMITS, UnsupportedMediaError, None, "HLS"),
        (clip(container="avi"), LIMITS, UnsupportedMediaError, None, "RIFF"),
        (clip(12, 1), LIMITS, InvalidRequestError, "video_too_long", "10 seconds"),
        (clip(2, 300, size=(16, 16)), LIMITS, InvalidRequestError, "video_too_many_frames", "500"),
        (clip(1, 2, size=(1280, 64)), LIMITS, PayloadTooLargeError, "video_too_large", "1280x64"),
        (clip(4, 8)[:600], LIMITS, InvalidRequestError, "invalid_video", "corrupt"),
        (clip(2, audio_only=True), LIMITS, InvalidRequestError, "invalid_video", "no video track"),
        (clip(1, 2, codec="ffv1", container="mkv"), LIMITS, UnsupportedMediaError, "unsupported_video_codec", "ffv1"),
        (clip(2, 8), VideoLimits(max_bytes=100), PayloadTooLargeError, "video_too_large", "bytes"),
    ],
    ids=["png", "hls", "avi", "long", "frames", "wide", "truncated", "audio-only", "codec", "bytes"],
)
def test_refusals(data: bytes, limits: VideoLimits, error: type, code: str | None, words: str) -> None:
    with pytest.raises(error) as e:
        decode_video(data, limits, FrameSampling(), param="messages[0].content[1].video_url")
    assert e.value.param == "messages[0].content[1].video_url"  # type: ignore[attr-defined]
    if code:
        assert e.value.code == code  # type: ignore[attr-defined]
    assert words in e.value.message, e.value.message  # type: ignore[attr-defined]


def test_without_a_duration_frames_are_decimated_evenly() -> None:
    from PIL import Image

    from mmserve.media.video.decode import _Picker

    picker = _Picker(FrameSampling(fps=2, max_frames=4), duration=None)
    blank = Image.new("RGB", (2, 2))
    for i in range(100):  # 10 s at 10 fps
        t = i / 10
        if picker.wants(t):
            picker.keep(t, blank)
        assert len(picker.kept) <= 4
    times, frames = picker.result()
    assert len(frames) == len(times) <= 4 and times[0] == 0.0
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(times)}
    assert len(gaps) == 1 and times[-1] >= 6  # evenly spread over most of the clip
