"""Prometheus gauges read from the runtime at scrape time (queue depth, running requests, replicas, batch size)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mmserve.runtime.runtime import Runtime


class RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Any]:
        queue = GaugeMetricFamily("mmserve_queue_depth", "Requests waiting for a slot", labels=["model"])
        active = GaugeMetricFamily("mmserve_active_requests", "Requests running", labels=["model"])
        loaded = GaugeMetricFamily("mmserve_loaded_replicas", "Replicas loaded", labels=["model"])
        batch = GaugeMetricFamily(
            "mmserve_batch_size",
            "Generations in the running batches of a batching engine (all replicas)",
            labels=["model"],
        )
        for mid, dep in self.runtime.deployments.items():
            queue.add_metric([mid], dep.waiting)
            active.add_metric([mid], dep.active)
            loaded.add_metric([mid], dep.loaded_replicas)
            sizes = [r.engine.batch_size() for r in dep.replicas if r.engine is not None]
            known = [s for s in sizes if s is not None]
            if known:
                batch.add_metric([mid], sum(known))
        yield from (queue, active, loaded, batch)
