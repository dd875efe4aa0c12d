"""Usage per local hour or day: calendar buckets across daylight saving changes, and the SQL grouping."""

from __future__ import annotations

import itertools
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mmserve.control.usage import UsageEvent, UsageRecorder
from mmserve.control.usage_series import MAX_BUCKETS, bucket_start, buckets, zone
from mmserve.db import Base, Database
from mmserve.errors import InvalidRequestError

PARIS = ZoneInfo("Europe/Paris")
UTC = ZoneInfo("UTC")


def _ts(*args: int, tz: ZoneInfo = PARIS, fold: int = 0) -> float:
    return datetime(*args, tzinfo=tz, fold=fold).timestamp()


def test_days_follow_local_midnight_through_daylight_saving() -> None:
    # 2026-03-29 has 23 hours in Paris, 2026-10-25 has 25
    days = buckets(_ts(2026, 3, 28, 15), _ts(2026, 3, 31), "day", PARIS)
    assert days == [_ts(2026, 3, 28), _ts(2026, 3, 29), _ts(2026, 3, 30)]
    assert days[2] - days[1] == 23 * 3600
    autumn = buckets(_ts(2026, 10, 24), _ts(2026, 10, 26, 1), "day", PARIS)
    assert [b - a for a, b in itertools.pairwise(autumn)] == [24 * 3600, 25 * 3600]
    assert bucket_start(_ts(2026, 10, 25, 23, 59), "day", PARIS) == _ts(2026, 10, 25)


def test_hours_in_a_half_hour_zone_and_the_repeated_hour() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+5:30: a local hour starts at :30 UTC
    start = bucket_start(datetime(2026, 6, 1, 10, 45, tzinfo=UTC).timestamp(), "hour", kolkata)
    assert datetime.fromtimestamp(start, UTC).minute == 30
    # 02:00-03:00 happens twice in Paris on 2026-10-25: two buckets, an hour apart
    first = bucket_start(_ts(2026, 10, 25, 2, 30, fold=0), "hour", PARIS)
    second = bucket_start(_ts(2026, 10, 25, 2, 30, fold=1), "hour", PARIS)
    assert second - first == 3600
    hours = buckets(_ts(2026, 10, 25, 1), _ts(2026, 10, 25, 4), "hour", PARIS)
    assert len(hours) == 4 and first in hours and second in hours


def test_too_many_buckets_and_unknown_zones_are_400s() -> None:
    with pytest.raises(InvalidRequestError) as e:
        buckets(0, (MAX_BUCKETS + 5) * 3600, "hour", UTC)
    assert e.value.param == "group_by" and "group_by=day" in e.value.message
    for bad in ("Mars/Olympus", "../etc/passwd", "Europe", "UTC\x00"):
        with pytest.raises(InvalidRequestError) as e:
            zone(bad)
        assert e.value.param == "tz"
    assert zone(None).key == "UTC"


BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get("MMSERVE_TEST_DATABASE_URL") else [])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_series_sums_records_per_local_day_key_and_model(backend: str, tmp_path: Path) -> None:
    if backend == "postgres":
        db = Database(os.environ["MMSERVE_TEST_DATABASE_URL"])
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
    else:
        db = Database(f"sqlite:///{tmp_path / 'usage.db'}")
    await db.create_all()
    recorder = UsageRecorder(db)
    at = [
        ("k1", "m", _ts(2026, 3, 28, 23, 50)),  # Paris day 28 (22:50 UTC)
        ("k1", "m", _ts(2026, 3, 29, 0, 10)),  # day 29 (23:10 UTC on the 28th)
        ("k1", "m", _ts(2026, 3, 29, 23, 59)),
        ("k2", "m", _ts(2026, 3, 29, 12)),
        ("k1", "other", _ts(2026, 3, 29, 12)),
    ]
    for key, model, ts in at:
        recorder.record(
            UsageEvent(model=model, task="chat", endpoint="e", key_id=key, input_tokens=10, cost=0.5, created_at=ts)
        )
    try:
        rows = await recorder.series(
            key_id="k1",
            all_keys=False,
            start=_ts(2026, 3, 28),
            end=_ts(2026, 3, 31),
            model=None,
            group_by="day",
            tz=PARIS,
        )
        got = [(r["bucket_start"], r["model"], r["requests"], r["input_tokens"], r["cost"]) for r in rows]
        assert got == [
            (_ts(2026, 3, 28), "m", 1, 10, 0.5),
            (_ts(2026, 3, 29), "m", 2, 20, 1.0),
            (_ts(2026, 3, 29), "other", 1, 10, 0.5),
        ]
        utc_rows = await recorder.series(
            key_id=None, all_keys=True, start=0, end=_ts(2026, 4, 1), model="m", group_by="day", tz=UTC
        )  # in UTC both early records fall on the 28th
        assert [(r["key_id"], r["requests"]) for r in utc_rows] == [("k1", 2), ("k1", 1), ("k2", 1)]
        assert next(r["bucket_start"] for r in utc_rows) == _ts(2026, 3, 28, tz=UTC)
    finally:
        await db.dispose()
