"""A replica's queue depth, running requests and time to first token, read from vLLM's ``/metrics``."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from mmserve.engines.types import ServingStats

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
TTFT = "vllm:time_to_first_token_seconds"


def parse_metrics(text: str) -> ServingStats:
    """vLLM's Prometheus text -> :class:`ServingStats` (summed over its engines and model names)."""
    stats = ServingStats()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == WAITING:
                stats.waiting += sample.value
            elif sample.name == RUNNING:
                stats.running += sample.value
            elif sample.name == TTFT + "_bucket":
                le = float(sample.labels.get("le", "inf"))
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name == TTFT + "_sum":
                stats.ttft_sum += sample.value
            elif sample.name == TTFT + "_count":
                stats.ttft_count += sample.value
    stats.ttft_buckets = sorted(buckets.items(), key=lambda b: (math.isinf(b[0]), b[0]))
    return stats
