"""HTTP to one vLLM server over its unix socket, on mmserve's own HTTP/1.1 (engines/common/http).

Every chat request pays for its client on mmserve's event loop. Measured streaming 16-token
answers from a local server (2-core machine): httpx's AsyncClient spent 1.35 ms of CPU per
request, httpcore's connection pool 0.83 ms; the connections the upstream engines use (httptools'
parser on asyncio, a request's head and body in one send) less again (see
:mod:`mmserve.engines.common.http.wire` for why mmserve speaks HTTP/1.1 itself, and the figures).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmserve.engines.common.http.pool import ConnectionPool, unix_connector
from mmserve.engines.common.http.wire import Timeouts, TransportError, header_lines, request_bytes

ORIGIN = "http://vllm"  # the host is not used: requests go to the unix socket
# The deployment's max_concurrency admits requests; the pool never makes one wait.
MAX_CONNECTIONS = 100_000
JSON_LINES = header_lines([(b"host", b"vllm"), (b"content-type", b"application/json"), (b"accept", b"*/*")])
GET_LINES = header_lines([(b"host", b"vllm")])
# What a dead or restarting server looks like to a client (the socket gone, the connection cut, no answer).
TRANSPORT_ERRORS = (TransportError,)


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class VLLMClient:
    def __init__(self, socket: Path, *, read_timeout_s: float) -> None:
        self.pool = ConnectionPool("http", "vllm", 80, MAX_CONNECTIONS, unix_connector(str(socket)))
        self.timeouts = Timeouts(connect=10.0, read=read_timeout_s, write=60.0, pool=60.0)

    @asynccontextmanager
    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        """POST ``body`` as JSON; yields the status and the response's bytes as they come."""
        resp = await self.pool.request(_post(path, body), self.timeouts)
        try:
            yield resp.status_code, resp.aiter_bytes()
        finally:
            await resp.aclose()  # read to its end, the connection is reused; else it is closed

    async def post(self, path: str, body: dict[str, Any], *, timeout: float | None = None) -> Reply:
        return await self._send(_post(path, body), timeout)

    async def get(self, path: str, *, timeout: float | None = None) -> Reply:
        return await self._send(request_bytes("GET", path, GET_LINES, None), timeout)

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def _send(self, data: bytes, timeout: float | None) -> Reply:
        t = self.timeouts
        timeouts = t if timeout is None else Timeouts(t.connect, timeout, t.write, t.pool)
        resp = await self.pool.request(data, timeouts)
        try:
            return Reply(resp.status_code, b"".join([chunk async for chunk in resp.aiter_bytes()]))
        finally:
            await resp.aclose()


def _post(path: str, body: dict[str, Any]) -> bytes:
    content = json.dumps(body).encode()
    return request_bytes("POST", path, JSON_LINES + b"content-length: %d\r\n" % len(content), content)
