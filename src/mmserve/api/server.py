"""The HTTP server side that the app cannot see: uvicorn's config and its HTTP/1.1 protocol.

uvicorn answers what never reaches the app (a request it cannot parse: a negative or
non-numeric Content-Length, Content-Length with Transfer-Encoding, a malformed header) with
a plain-text 400, and waits for ever on a client that opens a connection and never finishes
its headers. :class:`Protocol` (uvicorn's httptools protocol, subclassed) answers both in the
OpenAI error envelope like every other error:

- a request the parser refuses: 400 ``invalid_http``, connection closed;
- headers not complete within ``limits.header_timeout_s`` of a connection's start or of a
  request's first byte: 408 ``request_timeout``, connection closed. (Between requests on a
  kept-alive connection uvicorn's own keep-alive timeout closes idle connections; a body
  too slow is timed by :mod:`mmserve.api.body_limit`, once the app reads it.)

It also sends a response's head and body in one write (:mod:`mmserve.api.coalesce`).

Why a subclass: uvicorn has no setting for any of these (its ``http`` option takes a protocol
class for such needs); the hooks overridden are the ones its own protocol uses for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mmserve.api.coalesce import CoalescingTransport
from mmserve.errors import InvalidRequestError, MMServeError, RequestTimeoutError
from mmserve.settings import Settings

log = logging.getLogger("mmserve.http")


def uvicorn_config(app: Any, settings: Settings, **kwargs: Any) -> uvicorn.Config:
    """uvicorn's Config for ``app`` with mmserve's protocol; ``kwargs`` override (host, port, ...)."""
    timeout = settings.limits.header_timeout_s

    class _Protocol(Protocol):
        header_timeout_s = timeout

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": 10,
        "http": _Protocol,
        **kwargs,
    }
    return uvicorn.Config(app, **options)


class Protocol(HttpToolsProtocol):
    header_timeout_s: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # head and body: one send
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        err = InvalidRequestError(
            "The request is not valid HTTP/1.1 (a malformed request line or header, a negative, repeated or "
            "non-numeric Content-Length, or Content-Length together with Transfer-Encoding).",
            code="invalid_http",
        )
        self._answer_and_close(err)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_timer()  # a pipelined request behind one in flight: judged once that is answered
            return
        log.warning("closed a connection whose request headers took over %g s", self.header_timeout_s)
        self._answer_and_close(
            RequestTimeoutError(
                f"The request headers did not arrive within {self.header_timeout_s:g} s "
                "(MMSERVE_LIMITS__HEADER_TIMEOUT_S)."
            )
        )

    def _answer_and_close(self, err: MMServeError) -> None:
        body = json.dumps(err.to_dict()).encode()
        reason = {400: b"Bad Request", 408: b"Request Timeout"}.get(err.status_code, b"Error")
        head = [b"HTTP/1.1 %d %s\r\n" % (err.status_code, reason)]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()
