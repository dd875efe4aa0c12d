"""The request body cap (``Settings.limits.max_request_bytes``), answered in the OpenAI envelope.

A declared Content-Length over the cap is refused before the body is read; a streamed
(chunked) body is counted as it arrives and refused once it passes the cap. Both answer 413
with the error envelope. (FastAPI's own ``max_body_size`` is not used: its middleware sits
outside ours and replaces any 413 with a plain-text "Content Too Large".)
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmserve.api.errors import PayloadTooLargeError


class ContentLengthLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            err = PayloadTooLargeError(f"The request body is larger than the server's limit of {self.max_bytes} bytes.")
            body = json.dumps(err.to_dict()).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # an HTTPException passes FastAPI's body parsing unchanged; the handler shapes it
                    raise HTTPException(status_code=413)
            return message

        await self.app(scope, counted, send)
