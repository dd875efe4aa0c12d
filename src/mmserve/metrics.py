"""Prometheus metrics (prometheus-client), one registry per app so several apps can share a process.

Request counts/latency come from an ASGI middleware (:mod:`mmserve.api.metrics.middleware`);
model lifecycle from the runtime; time to first token from the streaming services; queue depth
and loaded replicas are read from the runtime at scrape time (:mod:`mmserve.runtime.collector`).
This module knows neither the web framework nor the runtime: both report into it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

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
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: M, *values: str) -> M:
        """``metric.labels(*values)``, kept for the next request: prometheus-client's ``labels()``
        validates and takes a lock on every call (py-spy: 3% of the event loop per request at
        concurrency 16). As many children as the registry holds anyway."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def model_loaded(self, model: str, seconds: float, cold: bool) -> None:
        self.load_time.labels(model).observe(seconds)
        if cold:
            self.cold_starts.labels(model).inc()

    def model_unloaded(self, model: str, reason: str) -> None:
        self.unloads.labels(model, reason).inc()
