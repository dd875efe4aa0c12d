"""Where decoding runs: off the event loop, bounded in time, isolated from the server.

Why worker processes by default, and not threads: the pixel bounds and the header checks
bound the *memory* of a decode, but not its *time*. A 156 KB progressive JPEG of 4000x4000
with 2000 repeated scans took 41 s to decode here (libjpeg has no scan limit; we now refuse
more than ``ImageLimits.max_jpeg_scans`` scans, but other decoders have their own slow
paths), and a Python thread cannot be stopped: after its request timed out it would keep a
core busy and, repeated, take every decode slot. A decoder bug can also crash (a segfault
takes the whole server with it) or run away with memory. A worker process is killed on
timeout, its crash is a 400 for that image only, and it runs under an address-space cap.

The pool is written here rather than taken from pebble or ProcessPoolExecutor: those pass
pickles over a channel shared by all workers, so a worker killed mid-write can wedge the
others, and unpickling what a worker that parsed hostile bytes sends would let a decoder
exploit run code in the server. Here every worker has its own pipes (killing one never
touches another), speaks JSON plus raw bytes (see :mod:`mmserve.media.decodejob`), and is
driven by asyncio's subprocess support, so waiting costs no thread.

The process hop costs a copy of the bytes in and of the (already downscaled) pixels out;
``benchmarks/media.py`` measures it against threads. Bytes that would not fit in one pipe-full
go in a memory file whose descriptor is passed on a unix socket (see :mod:`mmserve.media.worker`).
``decode_isolation = "thread"`` keeps decoding in-process for trusted input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import mmserve
from mmserve.errors import InvalidRequestError, MMServeError, OverloadedError
from mmserve.media.decodejob import MAX_HEADER_BYTES, DecodeJob, DecodeResult, job_header, result_from_wire, run_job
from mmserve.media.worker import PIPE_BYTES, READY, frame

log = logging.getLogger("mmserve.media")
SPAWN_TIMEOUT_S = 60.0
_PACKAGE_ROOT = str(Path(mmserve.__file__).resolve().parent.parent)
# glibc malloc in a worker: keep freed image buffers for the next image instead of returning
# them to the kernel and page-faulting them in again (a 3000x2000 WEBP: 145 ms -> 96 ms here).
# The address-space cap still bounds what a worker holds.
_WORKER_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": str(256 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024),
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


class Decoder(Protocol):
    async def decode(self, job: DecodeJob) -> DecodeResult: ...

    async def aclose(self) -> None: ...


def _timeout_error(job: DecodeJob, seconds: float) -> InvalidRequestError:
    return InvalidRequestError(
        f"The {job.what} took longer than {seconds:g} s to decode; send a smaller or simpler {job.what}.",
        param=job.param,
        code=f"{job.what}_decode_timeout",
    )


class _LoopSemaphore:
    """An asyncio.Semaphore per event loop (asyncio primitives are bound to one loop)."""

    def __init__(self, value: int) -> None:
        self.value = value
        self._sems: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def get(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        for old in [lp for lp in self._sems if lp.is_closed()]:
            del self._sems[old]
        return self._sems.setdefault(loop, asyncio.Semaphore(self.value))


# ------------------------------------------------------------------ threads


class ThreadDecoder:
    """Decodes in a private thread pool. A decode that times out keeps its slot until it ends."""

    def __init__(self, concurrency: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="mmserve-decode")
        self._slots = _LoopSemaphore(concurrency)

    async def decode(self, job: DecodeJob) -> DecodeResult:
        sem = self._slots.get()
        await sem.acquire()
        future: Future[DecodeResult] = self._pool.submit(run_job, job)
        loop = asyncio.get_running_loop()
        timeout = job.timeout_s or self.timeout_s

        def done(f: Future[DecodeResult]) -> None:
            if not f.cancelled():
                f.exception()  # retrieved: no "never retrieved" warning after a timeout
            loop.call_soon_threadsafe(sem.release)

        future.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
        except TimeoutError:
            raise _timeout_error(job, timeout) from None

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------ processes


_MEMFD = hasattr(os, "memfd_create") and hasattr(socket, "send_fds")  # Linux


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process, fd_socket: socket.socket | None) -> None:
        self.proc = proc
        self.fd_socket = fd_socket  # where big payloads' memory files are sent (None: all through stdin)
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def spawn(cls, memory_mb: int) -> _Worker:
        env = {**os.environ, **_WORKER_ENV}
        # the worker imports the same mmserve as this server, however the server found it
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) if _MEMFD else (None, None)
        extra = ["--fd-socket", str(theirs.fileno())] if theirs is not None else []
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-W",
                "ignore",
                "-m",
                "mmserve.media.worker",
                "--memory-mb",
                str(memory_mb),
                *extra,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
                pass_fds=(theirs.fileno(),) if theirs is not None else (),
            )
        except BaseException:
            if ours is not None:
                ours.close()
            raise
        finally:
            if theirs is not None:
                theirs.close()
        if ours is not None:
            ours.setblocking(False)  # one small message per job: it never has to wait
        worker = cls(proc, ours)
        try:
            assert proc.stdout is not None
            ready = await asyncio.wait_for(proc.stdout.readexactly(len(READY)), SPAWN_TIMEOUT_S)
            if ready != READY:
                raise ConnectionError("unexpected greeting")
        except BaseException:
            worker.kill()
            raise
        return worker

    @property
    def usable(self) -> bool:
        return self.proc.returncode is None and self.loop is asyncio.get_running_loop()

    async def run(self, job: DecodeJob) -> DecodeResult:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        size = len(job.payload)
        if self.fd_socket is not None and size > PIPE_BYTES:
            stdin.write(frame(job_header(job, payload_fd=True), 0))
            self._send_memfd(job.payload)
        else:
            stdin.write(frame(job_header(job), size))
            stdin.write(job.payload)
        await stdin.drain()
        head_len = int.from_bytes(await stdout.readexactly(4), "big")
        if head_len > MAX_HEADER_BYTES:
            raise ConnectionError("oversized reply header")
        header = await stdout.readexactly(head_len)
        n = int.from_bytes(await stdout.readexactly(8), "big")
        if n > job.max_reply_bytes:
            raise ConnectionError("oversized reply")
        return result_from_wire(header, await stdout.readexactly(n), job)

    def _send_memfd(self, payload: bytes | memoryview) -> None:
        assert self.fd_socket is not None
        fd = os.memfd_create("mmserve-decode", os.MFD_CLOEXEC)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.lseek(fd, 0, os.SEEK_SET)
            socket.send_fds(self.fd_socket, [b"f"], [fd])  # the worker's copy keeps the file alive
        except BlockingIOError:
            raise ConnectionError("the worker is not taking payloads") from None
        finally:
            os.close(fd)

    def kill(self) -> None:
        if self.fd_socket is not None:
            self.fd_socket.close()
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)  # works from any loop; the child watcher reaps it


class ProcessDecoder:
    """Decodes in up to ``concurrency`` worker processes, started on demand and reused."""

    def __init__(self, concurrency: int, timeout_s: float, memory_mb: int) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._slots = _LoopSemaphore(concurrency)
        self._idle: list[_Worker] = []

    async def decode(self, job: DecodeJob) -> DecodeResult:
        timeout = job.timeout_s or self.timeout_s
        async with self._slots.get():
            worker = await self._take()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the coroutine in a task of
                # its own, three turns of the event loop per image (~2-4 ms at 16 streams, measured)
                async with asyncio.timeout(timeout):
                    image = await worker.run(job)
            except MMServeError:  # a well-formed refusal: the worker is fine
                self._idle.append(worker)
                raise
            except TimeoutError:
                worker.kill()
                raise _timeout_error(job, timeout) from None
            except (EOFError, ConnectionError, ValueError, asyncio.IncompleteReadError):
                worker.kill()
                code = await asyncio.wait_for(worker.proc.wait(), 5)
                log.warning("decode worker for %s stopped (exit code %s)", job.param, code)
                raise InvalidRequestError(
                    f"The {job.what} could not be decoded: the decoder gave up on it. Send a different {job.what}.",
                    param=job.param,
                    code=f"invalid_{job.what}",
                ) from None
            except BaseException:  # cancelled mid-exchange: the pipe's state is unknown
                worker.kill()
                raise
            self._idle.append(worker)
            return image

    async def _take(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.usable:
                return worker
            worker.kill()
        try:
            return await _Worker.spawn(self.memory_mb)
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError) as e:
            log.error("could not start a decode worker: %s", e)
            raise OverloadedError(
                "The server could not start a media decoder; retry shortly.", headers={"Retry-After": "1"}
            ) from None

    def worker_pids(self) -> list[int]:
        """The idle workers' process ids (for tests and diagnostics)."""
        return [w.proc.pid for w in self._idle]

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()
            if worker.loop is asyncio.get_running_loop():
                await worker.proc.wait()


def make_decoder(isolation: str, *, concurrency: int, timeout_s: float, memory_mb: int) -> Decoder:
    if isolation == "thread":
        return ThreadDecoder(concurrency, timeout_s)
    return ProcessDecoder(concurrency, timeout_s, memory_mb)
