"""Cap request bodies, answering 413 in the OpenAI error envelope.

Hand-written instead of FastAPI's ``max_body_size``: that middleware sits outside every user
middleware and, for a too-large *declared* Content-Length, replaces whatever response the app
sends with a plain-text "Content Too Large". Here a declared size over the cap is refused at
once; a streamed (chunked) body is answered with the same 413 the moment it passes the cap,
and the app then sees the client as gone (``http.disconnect``) and its own answer is dropped.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmserve.errors import PayloadTooLargeError


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}  # the app stops reading as if the client left
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # we already answered 413: whatever the app sends after is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        err = PayloadTooLargeError(
            f"The request body is larger than the server's limit of {self.max_bytes} bytes "
            "(MMSERVE_LIMITS__MAX_REQUEST_BYTES)."
        )
        body = json.dumps(err.to_dict()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
