"""The upstream client's connections (httpcore) and its responses, thinner than httpx's.

:class:`CoalescingBackend` wraps httpcore's network backend so that what a request writes (its
head, then its body: two writes in httpcore's HTTP/1.1 connection) leaves in one send when the
connection next reads: one syscall per request on the socket, not two. Nothing waits for a
write to complete before reading in HTTP/1.1 (httpcore sends the whole request, then reads), so
only the number of sends changes; a body past ``FLUSH_BYTES`` goes out as it is written.

The stream also answers httpcore's ``is_readable`` question (asked of every idle connection
each time the pool hands out or takes back one: a readable idle connection was closed by the
provider) with one ``poll`` on the socket it keeps. Through anyio's typed attributes that
question rebuilt a table of attribute getters per call: at concurrency 16 (16 idle
connections) py-spy put an eighth of the event loop's time in it.
"""

from __future__ import annotations

import codecs
import select
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore

FLUSH_BYTES = 256 * 1024  # writes held back at most this much before sending
# What a provider that is down, restarting or too slow looks like to a client.
TRANSPORT_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)


class _CoalescingStream(httpcore.AsyncNetworkStream):
    __slots__ = ("_inner", "_out", "_size", "_sock", "_timeout")

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        sock = inner.get_extra_info("socket")  # the TCP socket, under TLS too (uvloop's: a look-alike)
        self._sock: socket.socket | None = sock if callable(getattr(sock, "fileno", None)) else None
        self._out: list[bytes] = []
        self._size = 0
        self._timeout: float | None = None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._out.append(buffer)
        self._size += len(buffer)
        self._timeout = timeout
        if self._size >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out = []
        self._size = 0
        await self._inner.write(data, self._timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._out:
            await self._flush()
        return await self._inner.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._out = []
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        await self._flush()
        return _CoalescingStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._sock is not None:
            return _readable(self._sock)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket) -> bool:
    """Data (or the end of the stream) waiting on an idle connection: the peer closed it."""
    fd = sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class CoalescingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CoalescingStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _CoalescingStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class UpstreamResponse:
    """A provider's answer whose body is still to be read: status, headers (lower-case names), body."""

    __slots__ = ("_raw", "headers", "status_code")

    def __init__(self, raw: httpcore.Response) -> None:
        self._raw = raw
        self.status_code = raw.status
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw.headers}

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self._raw.aiter_stream():
            if chunk:
                yield chunk

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body's lines (UTF-8, ``\\n`` or ``\\r\\n`` ended; the last one may be unended)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        rest = ""
        async for chunk in self._raw.aiter_stream():
            text = rest + decoder.decode(chunk)
            *lines, rest = text.split("\n")
            for line in lines:
                yield line[:-1] if line.endswith("\r") else line
        rest += decoder.decode(b"", final=True)
        if rest:
            yield rest[:-1] if rest.endswith("\r") else rest

    async def aclose(self) -> None:
        await self._raw.aclose()
