"""A decode worker process: ``python -m mmserve.media.worker [--memory-mb N]``.

It reads jobs from stdin and writes results to stdout, one at a time, until stdin closes
(the server exited or dropped it). Frames: a 4-byte big-endian length and a JSON header,
then an 8-byte length and raw bytes. On start it writes one ``READY`` byte string, once the
decoders are imported, so that start-up time never counts against a decode's time limit.

A payload larger than a pipe holds comes another way when the server gives ``--fd-socket``
(a unix socket): the job's header says ``"payload_fd": true``, its frame carries no bytes, and
the payload is a memory file (``memfd``) whose descriptor the server sends on that socket. The
server then copies the payload once, into the file, where a pipe cost it a copy per pipe-full,
a wake-up of each side for each, and the event loop's own buffering of what did not fit
(a 13.5 MB base64 PNG: ~4 ms of the server's CPU instead of ~12, see ``benchmarks/media.py``).

The address space is capped (``RLIMIT_AS``) so that a decoder that runs away with memory
fails here with a MemoryError (a 413) instead of making the kernel kill the server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from typing import BinaryIO

READY = b"mmserve-decode-ready\n"
PIPE_BYTES = 1024 * 1024  # Linux's default pipe-max-size: what an unprivileged process may ask


def read_frame(stream: BinaryIO) -> tuple[bytes, bytes] | None:
    head_len = stream.read(4)
    if len(head_len) < 4:
        return None
    header = _read_exactly(stream, int.from_bytes(head_len, "big"))
    payload = _read_exactly(stream, int.from_bytes(_read_exactly(stream, 8), "big"))
    return header, payload


def frame(header: bytes, size: int) -> bytes:
    """What goes before ``size`` bytes of payload."""
    return len(header).to_bytes(4, "big") + header + size.to_bytes(8, "big")


def read_fd_payload(sock: socket.socket) -> bytes:
    """The payload of a job whose bytes come in a memory file: its descriptor arrives on ``sock``."""
    _msg, fds, _flags, _addr = socket.recv_fds(sock, 1, 1)
    if not fds:
        raise EOFError
    with open(fds[0], "rb", closefd=True) as f:  # one copy: the file is read from its start
        for extra in fds[1:]:
            os.close(extra)
        return f.read()


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    first = stream.read(n)  # a buffered stream reads until n bytes or the end: mostly one read, no copy
    if len(first) == n:
        return first
    buf = bytearray(first)
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _widen_pipes() -> None:
    """The pipes to the server (stdin, stdout) hold PIPE_BYTES rather than Linux's 64 KiB.

    A 10 MB image then crosses in ~10 writes, not ~160: each 64 KiB that filled the pipe cost a
    wake-up of this worker and of the server's event loop, and a 3000x2000 PNG took ~17 ms
    longer through a worker than decoded in place (benchmarks/media.py). Where the kernel
    refuses (another OS, a lower pipe-max-size), the pipes stay as they are.
    """
    import fcntl

    for fd in (0, 1):
        with contextlib.suppress(AttributeError, OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _limit_memory(megabytes: int) -> None:
    if megabytes <= 0:
        return
    import resource

    cap = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmserve.media.worker")
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--fd-socket", type=int, default=None, help="a unix socket's descriptor (big payloads)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # Ctrl+C reaches the whole process group: the server decides when workers stop (it kills
    # them, or closes their stdin), so a worker does not die mid-job with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    import av  # noqa: F401 - imported before READY: a first video decode must not pay for it
    from PIL import Image

    # Every format plugin now: Image.open imports only five on its own and the rest (WEBP, TIFF,
    # ...) at the first file it does not recognise, which made that decode pay ~0.1 s, and more
    # than the decode time limit on a loaded machine.
    Image.init()

    from mmserve.errors import MMServeError, PayloadTooLargeError
    from mmserve.media.decodejob import DecodeResult, job_from_wire, result_to_wire, run_job

    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the server's pipe
    _widen_pipes()
    _limit_memory(args.memory_mb)
    out.write(READY)
    out.flush()
    stdin = sys.stdin.buffer
    fd_socket = socket.socket(fileno=args.fd_socket) if args.fd_socket is not None else None
    while True:
        try:
            got = read_frame(stdin)
            if got is None:
                return 0
            spec, payload = json.loads(got[0]), got[1]
            if spec.get("payload_fd") and fd_socket is not None:
                payload = read_fd_payload(fd_socket)
        except EOFError:
            return 0
        job = job_from_wire(spec, payload)
        result: DecodeResult | MMServeError
        try:
            result = run_job(job)
        except MMServeError as e:
            result = e
        except MemoryError:
            result = PayloadTooLargeError(
                f"The {job.what} needs too much memory to decode.", code=f"{job.what}_too_large"
            )
        del got, spec, payload, job
        header, pixels = result_to_wire(result)
        out.write(frame(header, len(pixels)))
        out.write(pixels)
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
