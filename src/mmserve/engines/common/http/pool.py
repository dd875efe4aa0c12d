"""One server's keep-alive HTTP/1.1 connections (:class:`~.wire.Connection`): reuse, limit, timeouts.

See :mod:`.wire` for why mmserve speaks HTTP/1.1 to providers itself.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

from mmserve.engines.common.http.wire import (
    ConnectError,
    Connection,
    ConnectTimeout,
    HTTPResponse,
    Timeouts,
    expire,
)


async def open_connection(
    factory: Callable[[], Connection], host: str, port: int, tls: ssl.SSLContext | None
) -> tuple[asyncio.BaseTransport, Connection]:
    """The default connector: a TCP connection (TLS when given a context); tests wrap it."""
    loop = asyncio.get_running_loop()
    return await loop.create_connection(factory, host, port, ssl=tls, server_hostname=host if tls else None)


def unix_connector(path: str) -> Callable[..., Any]:
    """A connector to a unix socket at ``path`` (the host and port then only name the server in errors)."""

    async def connect(
        factory: Callable[[], Connection], host: str, port: int, tls: ssl.SSLContext | None
    ) -> tuple[asyncio.BaseTransport, Connection]:
        return await asyncio.get_running_loop().create_unix_connection(factory, path)

    return connect


def default_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    try:
        import certifi  # httpx's dependency: the roots httpcore verified providers against

        context.load_verify_locations(certifi.where())
    except ImportError:  # the system's roots only
        pass
    return context


class ConnectionPool:
    """One provider's keep-alive connections (one event loop)."""

    def __init__(self, scheme: str, host: str, port: int | None, max_connections: int, connector: Any = None) -> None:
        self.host = host
        self.port = port or (443 if scheme == "https" else 80)
        self.tls = default_tls() if scheme == "https" else None
        self.max_connections = max_connections
        self._connector = connector or open_connection
        self._idle: list[Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.is_closed = False

    async def request(self, data: bytes, timeouts: Timeouts) -> HTTPResponse:
        """Send ``data`` (a request's head and body) and read the answer's head."""
        conn = await self._checkout(timeouts)
        try:
            await conn.send(data, timeouts)
            await conn.head(timeouts)
        except BaseException:
            conn.close()
            self._checkin(conn)
            raise
        return HTTPResponse(conn.status, conn.raw_headers, _ConnectionBody(self, conn, timeouts.read))

    async def _checkout(self, timeouts: Timeouts) -> Connection:
        loop = asyncio.get_running_loop()
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                    return conn
                conn.close()
                self._open -= 1
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect(timeouts)
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            timer = loop.call_later(timeouts.pool, expire, fut, "waiting for a free connection")
            try:
                await fut
            finally:
                timer.cancel()
                if fut in self._waiters:
                    self._waiters.remove(fut)

    async def _connect(self, timeouts: Timeouts) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeouts.connect):
                transport, conn = await self._connector(lambda: Connection(loop), self.host, self.port, self.tls)
        except TimeoutError:
            raise ConnectTimeout(f"connecting to {self.host}:{self.port}") from None
        except OSError as e:  # refused, unreachable, name not found, TLS refused
            raise ConnectError(f"connecting to {self.host}:{self.port}: {e}") from e
        conn.transport = transport  # what the connector returned (a test's wrapper) is what is written to
        return conn

    def _checkin(self, conn: Connection) -> None:
        conn.done()
        if conn.closed or self.is_closed:
            conn.close()
            self._open -= 1
        else:
            self._idle.append(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def aclose(self) -> None:
        self.is_closed = True
        for conn in self._idle:
            conn.close()
        self._open -= len(self._idle)
        self._idle = []


class _ConnectionBody:
    __slots__ = ("_conn", "_pool", "_timeout")

    def __init__(self, pool: ConnectionPool, conn: Connection, timeout: float) -> None:
        self._pool: ConnectionPool | None = pool
        self._conn = conn
        self._timeout = timeout

    async def next_chunk(self) -> bytes | None:
        return await self._conn.next_chunk(self._timeout)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._checkin(self._conn)
