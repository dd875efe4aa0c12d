"""Prometheus metrics read from the runtime at scrape time (queue depth, running requests, replicas, batch size).

Engines that run their own server (vLLM) also report, per replica, the requests waiting and
running inside it and its time to first token (:meth:`Runtime.refresh_stats` reads them just
before a scrape).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
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
        labels = ["model", "replica"]
        waiting = GaugeMetricFamily(
            "mmserve_engine_queue_depth", "Requests queued inside a replica's engine server (vLLM)", labels=labels
        )
        running = GaugeMetricFamily(
            "mmserve_engine_running_requests", "Requests generating in a replica's engine server (vLLM)", labels=labels
        )
        ttft = HistogramMetricFamily(
            "mmserve_engine_time_to_first_token_seconds",
            "Time to first token measured by a replica's engine server (vLLM)",
            labels=labels,
        )
        for mid, dep in self.runtime.deployments.items():
            queue.add_metric([mid], dep.waiting)
            active.add_metric([mid], dep.active)
            loaded.add_metric([mid], dep.loaded_replicas)
            sizes = [r.engine.batch_size() for r in dep.replicas if r.engine is not None]
            known = [s for s in sizes if s is not None]
            if known:
                batch.add_metric([mid], sum(known))
            for replica in dep.replicas:
                stats = replica.engine.stats() if replica.engine is not None else None
                if stats is None:
                    continue
                key = [mid, str(replica.index)]
                waiting.add_metric(key, stats.waiting)
                running.add_metric(key, stats.running)
                if stats.ttft_buckets:
                    buckets = [(_le(b), count) for b, count in stats.ttft_buckets]
                    ttft.add_metric(key, buckets, stats.ttft_sum)
        yield from (queue, active, loaded, batch, waiting, running, ttft)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
