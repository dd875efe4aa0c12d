"""Decode isolation: worker processes killed on timeout, crash and cancellation; threads bounded."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import time

import pytest
from PIL import Image

from mmserve.errors import InvalidRequestError, PayloadTooLargeError
from mmserve.media.decodejob import DecodeJob, run_job
from mmserve.media.decoder import ProcessDecoder, ThreadDecoder
from mmserve.media.image.decode import ImageInputSize, ImageLimits
from mmserve.media.worker import PIPE_BYTES
from tests.helpers import hostile as h
from tests.helpers.images import image_bytes

LIMITS = ImageLimits()


def job(data: bytes, **kw: object) -> DecodeJob:
    return DecodeJob(data, LIMITS, "messages[0].content[0].image_url", **kw)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except FileNotFoundError:
        return False


async def _gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_process_decoder_gives_the_in_process_result() -> None:
    d = ProcessDecoder(2, 30, 2048)
    try:
        data = h.encode(h.noisy((300, 200)), "PNG")
        target = ImageInputSize(shortest_edge=56)
        img = await d.decode(job(data, input_size=target))
        assert img.size == (84, 56) and img.tobytes() == run_job(job(data, input_size=target)).tobytes()
        from_b64 = await d.decode(job(base64.b64encode(data), base64=True))
        assert from_b64.size == (300, 200)
        pids = d.worker_pids()
        assert len(pids) == 1  # sequential decodes reuse one worker
        with pytest.raises(PayloadTooLargeError) as e:
            await d.decode(job(h.png_bomb_header()))
        assert e.value.param == "messages[0].content[0].image_url" and e.value.code == "image_too_large"
        with pytest.raises(InvalidRequestError) as e2:
            await d.decode(job(b"ba!=", base64=True))
        assert e2.value.code == "invalid_base64"
        assert d.worker_pids() == pids  # errors do not cost a worker
        both = await asyncio.gather(d.decode(job(image_bytes())), d.decode(job(image_bytes(fmt="WEBP"))))
        assert [i.size for i in both] == [(64, 48), (64, 48)]
        assert len(d.worker_pids()) == 2
    finally:
        await d.aclose()
    assert all([await _gone(p) for p in pids])


async def test_timeout_kills_the_worker() -> None:
    limit = h.decode_time_limit()
    d = ProcessDecoder(1, limit, 2048)
    try:
        await d.decode(job(image_bytes()))
        (pid,) = d.worker_pids()
        with pytest.raises(InvalidRequestError) as e:
            await d.decode(job(h.slow_jpeg()))
        assert e.value.code == "image_decode_timeout" and f"{limit:g} s" in e.value.message
        assert await _gone(pid), "the timed-out decode is still burning CPU"
        assert (await d.decode(job(image_bytes()))).size == (64, 48)
        assert d.worker_pids() != [pid]
    finally:
        await d.aclose()


async def test_a_crashed_worker_is_a_400_for_that_image_only() -> None:
    d = ProcessDecoder(1, 30, 2048)
    try:
        await d.decode(job(image_bytes()))
        (pid,) = d.worker_pids()
        task = asyncio.ensure_future(d.decode(job(h.slow_jpeg())))
        await asyncio.sleep(h.decode_time_limit())  # mid-decode
        os.kill(pid, signal.SIGSEGV)  # what a decoder bug does
        with pytest.raises(InvalidRequestError) as e:
            await task
        assert e.value.code == "invalid_image" and "SIGSEGV" not in e.value.message
        assert (await d.decode(job(image_bytes()))).size == (64, 48)
    finally:
        await d.aclose()


async def test_cancelling_a_decode_kills_its_worker() -> None:
    d = ProcessDecoder(1, 30, 2048)
    try:
        await d.decode(job(image_bytes()))
        (pid,) = d.worker_pids()
        task = asyncio.ensure_future(d.decode(job(h.slow_jpeg())))
        await asyncio.sleep(h.decode_time_limit())  # mid-decode
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _gone(pid)
    finally:
        await d.aclose()


async def test_memory_cap_turns_a_memory_hog_into_413() -> None:
    d = ProcessDecoder(1, 30, 200)
    try:
        data = h.encode(Image.new("RGBA", (4000, 4000), (1, 2, 3, 100)), "PNG")
        with pytest.raises(PayloadTooLargeError, match="too much memory"):
            await d.decode(job(data))
        assert (await d.decode(job(image_bytes()))).size == (64, 48)
    finally:
        await d.aclose()


async def test_thread_decoder_keeps_the_slot_of_a_timed_out_decode() -> None:
    d = ThreadDecoder(1, h.decode_time_limit())
    try:
        with pytest.raises(InvalidRequestError) as e:
            await d.decode(job(h.slow_jpeg()))
        assert e.value.code == "image_decode_timeout"
        sem = d._slots.get()
        assert sem.locked()  # the thread still runs: its slot is not handed to the next image
        deadline = time.monotonic() + 60
        while sem.locked() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not sem.locked()
        assert (await d.decode(job(image_bytes()))).size == (64, 48)
    finally:
        await d.aclose()


def test_a_decoder_outlives_an_event_loop() -> None:
    d = ProcessDecoder(1, 30, 2048)
    assert asyncio.run(d.decode(job(image_bytes()))).size == (64, 48)
    old = d.worker_pids()
    assert asyncio.run(d.decode(job(image_bytes(fmt="JPEG")))).size == (64, 48)  # a new worker on the new loop
    assert d.worker_pids() != old
    asyncio.run(d.aclose())


async def test_payloads_bigger_than_a_pipe_holds_reach_the_worker_in_a_memory_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[int] = []
    send_fds = socket.send_fds

    def counted(sock: socket.socket, buffers: list[bytes], fds: list[int], *a: object) -> int:
        sent.append(os.fstat(fds[0]).st_size)
        return send_fds(sock, buffers, fds, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "send_fds", counted)
    d = ProcessDecoder(2, 30, 2048)
    try:
        data = h.encode(h.noisy((1200, 800)), "PNG")
        b64 = base64.b64encode(data)
        assert len(b64) > PIPE_BYTES
        target = ImageInputSize(shortest_edge=112)
        big, small = await asyncio.gather(
            d.decode(job(memoryview(b"xx" + b64)[2:], base64=True, input_size=target)),
            d.decode(job(image_bytes(), input_size=target)),
        )
        assert sent == [len(b64)]  # the big one only; the small one went through the pipe
        assert big.tobytes() == run_job(job(data, input_size=target)).tobytes() and small.size == (
            64,
            48,
        )  # never upscaled
        with pytest.raises(InvalidRequestError) as e:  # refused in the worker, which stays
            await d.decode(job(b64[:-4] + b"!!!!", base64=True))
        assert e.value.code == "invalid_base64" and len(sent) == 2
        assert len(d.worker_pids()) == 2
    finally:
        await d.aclose()


async def test_a_worker_killed_while_its_memory_file_is_read_fails_that_image_only() -> None:
    d = ProcessDecoder(1, 30, 2048)
    try:
        b64 = base64.b64encode(h.encode(h.noisy((1200, 800)), "PNG"))
        await d.decode(job(b64, base64=True))
        (pid,) = d.worker_pids()
        task = asyncio.create_task(d.decode(job(b64, base64=True)))
        await asyncio.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(InvalidRequestError) as e:
            await task
        assert e.value.code == "invalid_image"
        assert (await d.decode(job(b64, base64=True))).size == (1200, 800)  # a new worker
    finally:
        await d.aclose()
