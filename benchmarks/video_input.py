"""Chat video input: a video_url's MP4 -> the frames a vision model sees.

    python benchmarks/video_input.py [--seconds 10] [--fps 30] [--size 1280x720] [--rounds 5] [--frames 8]

Compares, interleaved in each round, mmserve's path (the video job of the isolated decode
worker, :class:`mmserve.media.decoder.ProcessDecoder`: base64 in the worker, header checks,
every frame decoded but only the sampled ones converted to RGB, scaled by FFmpeg straight to
the model's input size) with the naive path (decode every frame to full-size RGB, keep them
all, then pick ``--frames`` evenly and resize them: what an unbounded-frame loader does, the
shape of vLLM's CVE-2026-5497). Both end with the same number of frames of the same size.
Reported: seconds per video and the bytes of decoded frames each path holds at its peak,
and their ratios (medians over the rounds). Writes benchmarks/results/video_input.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import statistics
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np
from PIL import Image

from _common import write_result
from mmserve.media.decodejob import DecodeJob, VideoSpec
from mmserve.media.decoder import ProcessDecoder
from mmserve.media.image.decode import ImageInputSize, ImageLimits, plan_size
from mmserve.media.video.decode import DecodedVideo, FrameSampling, VideoLimits

INPUT = ImageInputSize(shortest_edge=336)  # a CLIP/LLaVA-1.5 processor


def make_video(seconds: float, fps: int, size: tuple[int, int]) -> bytes:
    """An H.264 MP4 with moving, textured content (so frames differ and compress like footage)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size[1] // 8 + 2, size[0] // 8 + 2, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(base).resize((size[0] + 64, size[1] + 64), Image.Resampling.BICUBIC))
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(round(seconds * fps)):
            dx = i % 64
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(field[dx : dx + size[1], dx : dx + size[0]]))
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def naive(data: bytes, frames: int) -> tuple[list[Image.Image], int]:
    """Every frame to full-size RGB, all kept; then ``frames`` picked evenly and resized."""
    with av.open(io.BytesIO(data)) as container:
        everything = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    held = sum(a.nbytes for a in everything)
    picks = [everything[int((k + 0.5) * len(everything) / frames)] for k in range(frames)]
    out = []
    for a in picks:
        img = Image.fromarray(a)
        size = plan_size(img.width, img.height, input_size=INPUT)
        out.append(img.resize(size, Image.Resampling.BICUBIC) if size else img)
    return out, held


async def run(args: argparse.Namespace) -> dict[str, Any]:
    w, h = (int(x) for x in args.size.split("x"))
    data = make_video(args.seconds, args.fps, (w, h))
    payload = base64.b64encode(data)
    limits = VideoLimits(max_bytes=len(data) + 1, max_seconds=args.seconds + 1, max_decoded_frames=10**6)
    spec = VideoSpec(limits, FrameSampling(fps=args.frames / args.seconds, max_frames=args.frames, input_size=INPUT))
    job = DecodeJob(payload, ImageLimits(), "video_url", base64=True, video=spec)
    decoder = ProcessDecoder(concurrency=1, timeout_s=600, memory_mb=0)
    rounds: list[dict[str, float]] = []
    try:
        await decoder.decode(job)  # start the worker outside the timings
        for _ in range(args.rounds):
            t = time.perf_counter()
            ours = await decoder.decode(job)
            ours_s = time.perf_counter() - t
            assert isinstance(ours, DecodedVideo)
            t = time.perf_counter()
            theirs, naive_bytes = await asyncio.to_thread(naive, base64.b64decode(payload), args.frames)
            naive_s = time.perf_counter() - t
            assert len(ours.frames) == len(theirs) == args.frames and ours.frames[0].size == theirs[0].size
            ours_bytes = sum(f.width * f.height * 3 for f in ours.frames)
            rounds.append(
                {
                    "mmserve_s": ours_s,
                    "naive_s": naive_s,
                    "time_ratio_naive_over_mmserve": naive_s / ours_s,
                    "mmserve_frame_bytes": ours_bytes,
                    "naive_frame_bytes": naive_bytes,
                    "memory_ratio_naive_over_mmserve": naive_bytes / ours_bytes,
                }
            )
    finally:
        await decoder.aclose()
    return {
        "video": {"seconds": args.seconds, "fps": args.fps, "size": args.size, "bytes": len(data)},
        "frames_kept": args.frames,
        "frame_size": list(ours.frames[0].size),
        "median": {k: statistics.median(r[k] for r in rounds) for k in rounds[0]},
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8)
    write_result("video_input", asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
