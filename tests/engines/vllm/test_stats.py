"""A replica's statistics read from vLLM's /metrics text (an excerpt recorded from vLLM 0.32, counts edited)."""

from __future__ import annotations

from pathlib import Path

from mmserve.engines.vllm.stats import parse_metrics

SAMPLE = (Path(__file__).parent / "data" / "vllm-metrics.txt").read_text()


def test_queue_running_and_ttft_histogram() -> None:
    stats = parse_metrics(SAMPLE)
    assert (stats.waiting, stats.running) == (2.0, 3.0)
    assert stats.ttft_count == 1.0 and abs(stats.ttft_sum - 0.04836630821228027) < 1e-12
    bounds = [b for b, _ in stats.ttft_buckets]
    assert bounds[0] == 0.001 and bounds[-1] == float("inf") and bounds == sorted(bounds)
    assert dict(stats.ttft_buckets)[0.04] == 0.0 and dict(stats.ttft_buckets)[0.06] == 1.0


def test_nothing_to_read_is_zero() -> None:
    stats = parse_metrics(
        "# HELP process_cpu_seconds_total x\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 7.45\n"
    )
    assert (stats.waiting, stats.running, stats.ttft_count, stats.ttft_buckets) == (0.0, 0.0, 0.0, [])
