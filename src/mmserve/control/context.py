"""The caller of the current request, for the layers that need it without threading it through
every signature: model permissions (routing), ownership (jobs, artifacts) and metering.

An ASGI middleware creates one mutable :class:`RequestContext` per request and sets it in a
ContextVar; the auth dependency fills in the principal; work spawned for the request (tasks,
streaming bodies) copies the context and so sees the same object. Background work (video
jobs) passes the owner explicitly instead.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmserve.control.ratelimit import Limits
from mmserve.errors import PermissionDeniedError, clip
from mmserve.timing import CLOCK, RequestClock


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``key_id`` None means auth is off (a single-tenant server)."""

    key_id: str | None = None
    name: str = "anonymous"
    admin: bool = True
    models: tuple[str, ...] | None = None
    limits: Limits = field(default_factory=Limits)
    expires_at: float | None = None  # Unix time the key stops working (None: never)

    def may_use(self, model_id: str) -> bool:
        return self.models is None or model_id in self.models

    def check_model(self, model_id: str, param: str = "model") -> None:
        if not self.may_use(model_id):
            raise PermissionDeniedError(
                f"This API key may not use the model '{clip(model_id)}'. Allowed: {', '.join(self.models or ())}.",
                param=param,
                code="model_not_allowed",
            )


ANONYMOUS = Principal()


@dataclass
class RequestContext:
    principal: Principal = ANONYMOUS
    started: float = field(default_factory=time.perf_counter)
    headers: dict[str, str] = field(default_factory=dict)  # added to the response (rate limits, routing)


_current: ContextVar[RequestContext | None] = ContextVar("mmserve_request", default=None)


def current() -> RequestContext:
    ctx = _current.get()
    return ctx if ctx is not None else RequestContext()


def principal() -> Principal:
    return current().principal


# The gateway's own milliseconds before the response started (see mmserve.timing)
OVERHEAD_HEADER = b"x-mmserve-overhead-ms"


class RequestContextMiddleware:
    """Creates the request's context and clock, and adds their headers to the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = RequestContext()
        clock = RequestClock()
        token, clock_token = _current.set(ctx), CLOCK.set(clock)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if ctx.headers:
                    present = {k.lower() for k, _ in headers}
                    headers += [
                        (k.lower().encode(), v.encode())
                        for k, v in ctx.headers.items()
                        if k.lower().encode() not in present
                    ]
                headers.append((OVERHEAD_HEADER, b"%.3f" % (clock.overhead_s() * 1000)))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            CLOCK.reset(clock_token)
            _current.reset(token)
