"""Drive a live server's ASGI app directly, on its own event loop, as a client no socket can imitate."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.helpers.server import LiveServer


async def _stalled(server: LiveServer, path: str, body: bytes, content_type: str) -> list[dict[str, Any]]:
    """POST ``body``; the client stalls on the response's headers (its socket full), then disconnects.

    The disconnect arrives while the server still waits to send the headers, so the response is
    over before its body iterator is ever started.
    """
    headers_sent = asyncio.Event()
    body_read = False

    async def receive() -> dict[str, Any]:
        nonlocal body_read
        if not body_read:
            body_read = True
            return {"type": "http.request", "body": body, "more_body": False}
        await headers_sent.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            headers_sent.set()
            await asyncio.sleep(0.5)  # the transport is paused: the client stopped reading

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000),
        "server": (server.host, server.port),
    }
    await server.app(scope, receive, send)
    return sent


def stalled_post(
    server: LiveServer, path: str, payload: dict[str, Any] | None = None, *, files: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """POST ``payload`` as JSON (or, with ``files``, as a multipart form) to a client that stalls and leaves.

    Runs :func:`_stalled` on the server's loop; returns the ASGI messages the app sent.
    """
    if files is None:
        body, content_type = json.dumps(payload).encode(), "application/json"
    else:
        request = httpx.Request("POST", server.url + path, data=payload, files=files)
        body, content_type = request.read(), request.headers["content-type"]
    loop = server.server.servers[0].get_loop()
    return asyncio.run_coroutine_threadsafe(_stalled(server, path, body, content_type), loop).result(timeout=120)
