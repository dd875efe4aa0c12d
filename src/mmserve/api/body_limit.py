"""Refuse a declared Content-Length over the body cap with the OpenAI error envelope.

FastAPI/Starlette's ``max_body_size`` enforces the cap on streamed bodies and raises a 413
that our handlers shape; but for a too-large *declared* Content-Length Starlette replaces
any response with a plain-text 413. This outer ASGI check answers that case first.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from mmserve.api.errors import PayloadTooLargeError


class ContentLengthLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = dict(scope.get("headers", [])).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_bytes:
                err = PayloadTooLargeError(
                    f"The request body is larger than the server's limit of {self.max_bytes} bytes."
                )
                body = json.dumps(err.to_dict()).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ]
                await send({"type": "http.response.start", "status": 413, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
