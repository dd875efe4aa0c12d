"""HTTP request metrics as an ASGI middleware, by route template."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmserve.metrics import Metrics

METHODS = frozenset(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])


class MetricsMiddleware:
    """Counts every HTTP request by route template (not raw path: ids would explode the label space)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, route_of: Callable[[Scope], str]) -> None:
        self.app = app
        self.metrics = metrics
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = self.route_of(scope)
            m = self.metrics
            method = scope["method"] if scope["method"] in METHODS else "other"  # any token is a method to h11
            m.child(m.requests, method, route, str(status)).inc()
            if status >= 400:
                m.child(m.errors, route, str(status)).inc()
            m.child(m.latency, route).observe(time.perf_counter() - start)
