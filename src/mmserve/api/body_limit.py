"""Bound request bodies in size and time, answering 413 and 408 in the OpenAI error envelope.

Hand-written instead of FastAPI's ``max_body_size``: that middleware sits outside every user
middleware and, for a too-large *declared* Content-Length, replaces whatever response the app
sends with a plain-text "Content Too Large". Here a declared size over the cap is refused at
once; a streamed (chunked) body is answered with the same 413 the moment it passes the cap.

Time: a body must arrive within ``body_timeout_s`` in all, with no gap between two parts
longer than ``body_idle_timeout_s`` (a client that stops sending, or drips a byte at a time,
would otherwise hold its connection and the request's slot for ever); past either, the
client gets a 408 and the connection is closed. uvicorn has no body timeout of its own.
Once the body is complete nothing is timed: a streaming response waits on ``receive()`` for
the client to leave for as long as it streams.

Either way the app then sees the client as gone (``http.disconnect``) and its own answer is
dropped.
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmserve.errors import MMServeError, PayloadTooLargeError, RequestTimeoutError


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        timeout_s: float | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _answer(send, self._too_large())
            return
        seen = 0
        started = refused = body_done = False
        deadline = time.monotonic() + self.timeout_s if self.timeout_s else None

        async def refuse(err: MMServeError) -> Message:
            nonlocal refused
            refused = True
            if not started:
                await _answer(send, err)
            return {"type": "http.disconnect"}  # the app stops reading as if the client left

        async def limited_receive() -> Message:
            nonlocal seen, body_done
            if refused:
                return {"type": "http.disconnect"}
            if body_done:
                return await receive()  # e.g. a streaming response listening for the client to leave
            try:  # asyncio.timeout, not wait_for: no task per receive()
                async with asyncio.timeout(self._wait(deadline)):
                    message = await receive()
            except TimeoutError:
                return await refuse(self._too_slow(deadline))
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    return await refuse(self._too_large())
                body_done = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # we already answered: whatever the app sends after is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    def _wait(self, deadline: float | None) -> float | None:
        """How long the next part of the body may take (None: no limit)."""
        waits = [] if self.idle_timeout_s is None else [self.idle_timeout_s]
        if deadline is not None:
            waits.append(max(0.0, deadline - time.monotonic()))
        return min(waits) if waits else None

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"The request body is larger than the server's limit of {self.max_bytes} bytes "
            "(MMSERVE_LIMITS__MAX_REQUEST_BYTES)."
        )

    def _too_slow(self, deadline: float | None) -> RequestTimeoutError:
        if deadline is not None and time.monotonic() >= deadline:
            why = f"did not arrive within {self.timeout_s:g} s (MMSERVE_LIMITS__BODY_TIMEOUT_S)"
        else:
            why = f"stopped arriving for {self.idle_timeout_s:g} s (MMSERVE_LIMITS__BODY_IDLE_TIMEOUT_S)"
        return RequestTimeoutError(f"The request body {why}; send the whole body without pausing.")


async def _answer(send: Send, err: MMServeError) -> None:
    """The error as a complete response that also closes the connection."""
    body = json.dumps(err.to_dict()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": err.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
