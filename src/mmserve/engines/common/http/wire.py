"""HTTP/1.1 for the servers engines call: keep-alive connections on asyncio, parsed by httptools (llhttp).

Two clients use it: the upstream engines' (hosted providers, TCP or TLS) and the vLLM engine's
(its managed server, on a unix socket: :func:`~.pool.unix_connector`).

Why not httpcore (httpx's transport, used here before): its HTTP/1.1 is h11, pure Python, and
its pool and stream layers wrap every read of every chunk. py-spy on ``mmserve serve``
(concurrency 1, chat through an upstream card, a provider streaming a dozen SSE events) put
three tenths of the serving process's Python time in httpcore and h11, for a fixed provider
that needs none of their generality. Here a connection is an :class:`asyncio.Protocol` fed by
the event loop; httptools (uvicorn's own parser, C) calls back per header and body piece; a
reader waits on one future only when nothing has arrived yet, and takes everything that has
arrived at once. What is kept of httpcore's behaviour:

- one pool per provider (:class:`~.pool.ConnectionPool`): idle connections reused (most recent first),
  at most ``max_connections`` open, a request past that waits up to the pool timeout; a
  connection the provider closed while idle is noticed by the loop (``connection_lost``) and
  never handed out;
- the timeouts: connect, write (a body the kernel will not take), read (the wait for the next
  bytes), pool; each a :class:`TransportTimeout` (``ConnectTimeout`` for the connect);
- failures as :data:`TRANSPORT_ERRORS` (unreachable, dropped, not HTTP/1.1), which the client
  maps to its 502/504 and retries; a request target or header with CR, LF or NUL is refused
  before anything is sent;
- a request's head and body leave in one write (one send on the socket);
- TLS for ``https`` base URLs, verified against certifi's roots as httpcore did;
- a response left half-read closes its connection rather than return it to the pool; one read
  to its end goes back (if the provider keeps it alive); reading stops past ``READ_HIGH``
  bytes held and resumes as the reader takes them.
"""

from __future__ import annotations

import asyncio
import codecs
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httptools

READ_HIGH = 1024 * 1024  # bytes held unread before the connection stops reading


class TransportError(Exception):
    """The server (a provider, vLLM) could not be reached, dropped the connection or did not speak HTTP/1.1."""


class ConnectError(TransportError):
    pass


class ProtocolError(TransportError):
    pass


class TransportTimeout(TransportError):
    pass


class ConnectTimeout(TransportTimeout):
    pass


TRANSPORT_ERRORS = (TransportError,)


class Timeouts:
    __slots__ = ("connect", "pool", "read", "write")

    def __init__(self, connect: float, read: float, write: float, pool: float) -> None:
        self.connect, self.read, self.write, self.pool = connect, read, write, pool


def expire(fut: asyncio.Future[None], what: str) -> None:
    if not fut.done():
        fut.set_exception(TransportTimeout(what))


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._busy = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.error: TransportError | None = None
        self.chunks: deque[bytes] = deque()
        self._held = 0
        self._paused = False
        self._informational = False
        self._keep_alive = False

    # ------------------------------------------------------------------ the loop's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._busy or self.complete:  # bytes nobody asked for: this connection is not reusable
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(ProtocolError("an answer that is not valid HTTP/1.1"))
            if self.transport is not None:
                self.transport.close()

    def eof_received(self) -> bool | None:
        return None  # close: a half-closed provider sends nothing more

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._busy and not self.complete:
            if self.head_done and self._ends_at_close():
                self.complete = True  # a body delimited by the end of the connection
                self._wake()
            else:
                self._fail(ProtocolError("the provider closed the connection before its answer was complete"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ProtocolError("the provider closed the connection"))

    def pause_writing(self) -> None:
        self._drain = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # ------------------------------------------------------------------ the parser's callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue and the like: the answer is the next message
            self._informational = True
            self.raw_headers = []
            return
        self.status = status
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self._held += len(body)
        if self._held > READ_HIGH and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self.complete = True
        self._keep_alive = self._parser.should_keep_alive()  # asked later, the parser answers False
        self._wake()

    # ------------------------------------------------------------------ the reader's side

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: TransportError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _ends_at_close(self) -> bool:
        names = {k.lower() for k, _ in self.raw_headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    async def _wait(self, timeout: float, what: str) -> None:
        fut = self._waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, expire, fut, what)
        try:
            await fut
        finally:
            timer.cancel()
            self._waiter = None

    async def send(self, data: bytes, timeouts: Timeouts) -> None:
        """Start a request: its bytes in one write."""
        self._reset()
        self._busy = True
        assert self.transport is not None
        self.transport.write(data)
        if self._drain is not None:  # the kernel's buffer is full: wait for it to take the rest
            drain = self._drain
            timer = self.loop.call_later(timeouts.write, expire, drain, "writing the request")
            try:
                await drain
            finally:
                timer.cancel()

    async def head(self, timeouts: Timeouts) -> None:
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self._wait(timeouts.read, "waiting for the answer")

    async def next_chunk(self, timeout: float) -> bytes | None:
        """What arrived of the body since the last call (waiting for some), None at its end."""
        while True:
            if self.chunks:
                chunks = self.chunks
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._held = 0
                if self._paused:
                    self._paused = False
                    if self.transport is not None and not self.closed:
                        self.transport.resume_reading()
                return data
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            await self._wait(timeout, "waiting for the answer's next bytes")

    def reusable(self) -> bool:
        return self.complete and self._keep_alive and not self.closed and self.error is None

    def done(self) -> None:
        """The request is over: the connection idles (reusable) or closes."""
        self._busy = False
        if not self.reusable():
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HTTPResponse:
    """A provider's answer whose body is still to be read: status, headers (lower-case names), body."""

    __slots__ = ("_body", "headers", "status_code")

    def __init__(self, status: int, raw_headers: list[tuple[bytes, bytes]], body: Any) -> None:
        self.status_code = status
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
        self._body = body  # next_chunk() -> bytes | None, close()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while (chunk := await self._body.next_chunk()) is not None:
            if chunk:
                yield chunk

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body's lines (UTF-8, ``\\n`` or ``\\r\\n`` ended; the last one may be unended)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        rest = ""
        while (chunk := await self._body.next_chunk()) is not None:
            text = rest + decoder.decode(chunk)
            *lines, rest = text.split("\n")
            for line in lines:
                yield line[:-1] if line.endswith("\r") else line
        rest += decoder.decode(b"", final=True)
        if rest:
            yield rest[:-1] if rest.endswith("\r") else rest

    async def aclose(self) -> None:
        self._body.close()


def header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Headers as they are written (``name: value\\r\\n`` each), refusing any that would split the head."""
    for name, value in headers:
        if not name or any(c in name for c in b" :\r\n\0") or any(c in value for c in b"\r\n\0"):
            raise ProtocolError(f"the header {name!r} holds a character HTTP/1.1 does not allow there")
    return b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)


def request_bytes(method: str, target: str, lines: bytes, body: bytes | None) -> bytes:
    """A request's head (``lines`` from :func:`header_lines`) and body, as one write."""
    if " " in target or not target.isprintable():  # CR, LF, NUL or a space would split the request line
        raise ProtocolError("a request target holding a space or a control character")
    head = b"%s %s HTTP/1.1\r\n%s\r\n" % (method.encode("ascii"), target.encode(), lines)
    return head + body if body else head
