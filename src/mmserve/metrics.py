"""Prometheus metrics (prometheus-client), one registry per app so several apps can share a process.

Request counts/latency come from an ASGI middleware; model lifecycle from the runtime;
time to first token from the streaming services; queue depth and loaded replicas are read
from the runtime at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from mmserve.runtime.runtime import Runtime

METHODS = frozenset(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("mmserve_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.errors = Counter(
            "mmserve_request_errors", "HTTP requests answered 4xx/5xx", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "mmserve_request_latency_seconds",
            "Time to the full response",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "mmserve_time_to_first_token_seconds",
            "Streaming: time to the first content",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_requests = Counter(
            "mmserve_model_requests", "Requests served per model", ["model", "task"], registry=r
        )
        self.tokens = Counter("mmserve_tokens", "Tokens processed", ["model", "kind"], registry=r)
        self.load_time = Histogram(
            "mmserve_model_load_seconds",
            "Model load time",
            ["model"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.cold_starts = Counter(
            "mmserve_cold_starts", "Serverless loads triggered by a request", ["model"], registry=r
        )
        self.unloads = Counter("mmserve_model_unloads", "Model unloads", ["model", "reason"], registry=r)

    def attach_runtime(self, runtime: Runtime) -> None:
        self.registry.register(_RuntimeCollector(runtime))

    def model_loaded(self, model: str, seconds: float, cold: bool) -> None:
        self.load_time.labels(model).observe(seconds)
        if cold:
            self.cold_starts.labels(model).inc()

    def model_unloaded(self, model: str, reason: str) -> None:
        self.unloads.labels(model, reason).inc()


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Any]:
        queue = GaugeMetricFamily("mmserve_queue_depth", "Requests waiting for a slot", labels=["model"])
        active = GaugeMetricFamily("mmserve_active_requests", "Requests running", labels=["model"])
        loaded = GaugeMetricFamily("mmserve_loaded_replicas", "Replicas loaded", labels=["model"])
        for mid, dep in self.runtime.deployments.items():
            queue.add_metric([mid], dep.waiting)
            active.add_metric([mid], dep.active)
            loaded.add_metric([mid], dep.loaded_replicas)
        yield from (queue, active, loaded)


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
            m.requests.labels(method, route, str(status)).inc()
            if status >= 400:
                m.errors.labels(route, str(status)).inc()
            m.latency.labels(route).observe(time.perf_counter() - start)
