"""Usage over time: one GET /v1/usage?group_by= query against one period query per bucket.

    python benchmarks/usage_series.py [--records 200000] [--rounds 7]

Before ``group_by``, the console drew its usage charts with one totals query per bucket
(24 for a day by hour, 30 for a month by day, 4 at a time). This fills a SQLite usage table
with ``--records`` records over 30 days (20 keys x 6 models) and times, interleaved within
each round, the recorder's ``series()`` (one query grouped by local hour or day, DST-exact)
against ``totals()`` once per bucket. Writes
benchmarks/results/usage_series.json; compare the ratios (medians over the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from _common import write_result
from mmserve.control.usage import UsageEvent, UsageRecorder
from mmserve.control.usage_series import GroupBy, plan
from mmserve.db import Database

TZ = ZoneInfo("Europe/Paris")


async def fill(recorder: UsageRecorder, n: int, now: float) -> None:
    rng = random.Random(0)
    for i in range(n):
        recorder.record(
            UsageEvent(
                model=f"model-{rng.randrange(6)}",
                task="chat",
                endpoint="chat.completions",
                key_id=f"key_{rng.randrange(20):02d}",
                input_tokens=rng.randrange(1, 2000),
                output_tokens=rng.randrange(1, 500),
                cost=rng.random() / 1000,
                created_at=now - rng.random() * 30 * 86400,
            )
        )
        if i % 20000 == 19999:
            await recorder.flush()
    await recorder.flush()


async def per_bucket(recorder: UsageRecorder, starts: list[int], end: float) -> int:
    """The console's old way: one totals query per bucket, four at a time."""
    edges = [*starts[1:], end]
    sem = asyncio.Semaphore(4)

    async def one(a: float, b: float) -> int:
        async with sem:
            return len(await recorder.totals(key_id=None, all_keys=True, start=a, end=b, model=None))

    return sum(await asyncio.gather(*(one(a, b) for a, b in zip(starts, edges, strict=True))))


async def run(records: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'usage.db'}")
        await db.upgrade()
        recorder = UsageRecorder(db)
        now = time.time()
        await fill(recorder, records, now)
        out: dict[str, Any] = {}
        for label, group_by, span in (("24h_by_hour", "hour", 86400), ("30d_by_day", "day", 30 * 86400)):
            g: GroupBy = group_by  # type: ignore[assignment]
            p = plan(now - span + 1, now, g, TZ)
            starts = p.starts
            times: dict[str, list[float]] = {"series": [], "per_bucket": []}
            ratios = []
            for _ in range(rounds):  # interleaved legs
                t0 = time.perf_counter()
                rows = await recorder.series(key_id=None, all_keys=True, start=starts[0], end=now, model=None, plan=p)
                t1 = time.perf_counter()
                await per_bucket(recorder, starts, now)
                t2 = time.perf_counter()
                times["series"].append(t1 - t0)
                times["per_bucket"].append(t2 - t1)
                ratios.append((t2 - t1) / (t1 - t0))
            out[label] = {
                "buckets": len(starts),
                "rows": len(rows),
                "series_median_s": statistics.median(times["series"]),
                "per_bucket_median_s": statistics.median(times["per_bucket"]),
                "per_bucket_over_series_median": statistics.median(ratios),
            }
        await db.dispose()
        return {"records": records, "rounds": rounds, **out}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    write_result("usage_series", asyncio.run(run(args.records, args.rounds)))


if __name__ == "__main__":
    main()
