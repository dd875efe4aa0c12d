"""The request metrics middleware keeps its label space bounded whatever clients send."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from mmserve.api.metrics.middleware import MetricsMiddleware
from mmserve.metrics import Metrics


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 405, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_unknown_methods_share_one_label() -> None:
    metrics = Metrics()
    mw = MetricsMiddleware(_app, metrics=metrics, route_of=lambda scope: "unmatched")

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    for method in ("GET", *(f"X{i}" for i in range(50))):  # h11 accepts any token as a method
        await mw({"type": "http", "method": method, "path": "/"}, receive, send)
    methods = {s.labels["method"] for m in metrics.requests.collect() for s in m.samples}
    assert methods == {"GET", "other"}
