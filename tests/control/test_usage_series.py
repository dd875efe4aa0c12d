"""Usage per local hour or day: calendar buckets across daylight saving changes, and the SQL grouping."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mmserve.control.usage import UsageEvent, UsageRecorder
from mmserve.control.usage_series import MAX_BUCKETS, bucket_start, buckets, plan, zone
from mmserve.db import Database
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


def test_day_plans_cut_at_each_transition() -> None:
    p = plan(_ts(2026, 3, 1), _ts(2026, 11, 30), "day", PARIS)
    assert [u for u, _ in p.pieces[:-1]] == [_ts(2026, 3, 29, 3), _ts(2026, 10, 25, 2, fold=1)]  # 01:00 UTC both
    assert [shift - p.pieces[0][1] for _, shift in p.pieces] == [0, 3600, 0]  # +1 h, +2 h, +1 h
    assert len(p.numbers) == len(p.starts) == 274
    assert p.start_of(max(p.numbers) + 1) == _ts(2026, 11, 30)  # past the listed days: that date's midnight
    hours = plan(_ts(2026, 3, 29, 0, 30), _ts(2026, 3, 29, 5), "hour", PARIS)
    assert hours.pieces == [(None, -hours.starts[0])] and len(hours.starts) == 4  # 2:00-3:00 does not exist


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_series_sums_records_per_local_day_key_and_model(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'usage.db'}"
    db = Database(url)  # Postgres: its floor(); SQLite: a truncating cast
    await db.upgrade()
    recorder = UsageRecorder(db)
    at = [
        ("k1", "m", _ts(2026, 3, 28, 23, 50)),  # Paris day 28 (22:50 UTC)
        ("k1", "m", _ts(2026, 3, 29, 0, 10)),  # day 29 (23:10 UTC on the 28th)
        ("k1", "m", _ts(2026, 3, 29, 1, 59)),  # just before clocks go forward
        ("k1", "m", _ts(2026, 3, 29, 3, 1)),  # just after
        ("k1", "m", _ts(2026, 3, 29, 23, 59)),  # the last minute of a 23-hour day
        ("k1", "m", _ts(2026, 3, 30, 0, 0)),  # the next day
        ("k2", "m", _ts(2026, 3, 29, 12)),
        ("k1", "other", _ts(2026, 3, 29, 12)),
    ]
    for key, model, ts in at:
        recorder.record(
            UsageEvent(model=model, task="chat", endpoint="e", key_id=key, input_tokens=10, cost=0.5, created_at=ts)
        )
    try:
        days = plan(_ts(2026, 3, 28), _ts(2026, 3, 31), "day", PARIS)
        rows = await recorder.series(
            key_id="k1", all_keys=False, start=_ts(2026, 3, 28), end=_ts(2026, 3, 31), model=None, plan=days
        )
        got = [(r["bucket_start"], r["model"], r["requests"], r["input_tokens"], r["cost"]) for r in rows]
        assert got == [
            (_ts(2026, 3, 28), "m", 1, 10, 0.5),
            (_ts(2026, 3, 29), "m", 4, 40, 2.0),
            (_ts(2026, 3, 29), "other", 1, 10, 0.5),
            (_ts(2026, 3, 30), "m", 1, 10, 0.5),
        ]
        assert {r["bucket_start"] for r in rows} <= set(days.starts)
        utc_days = plan(_ts(2026, 3, 28, tz=UTC), _ts(2026, 4, 1, tz=UTC), "day", UTC)
        utc_rows = await recorder.series(
            key_id=None, all_keys=True, start=utc_days.starts[0], end=_ts(2026, 4, 1), model="m", plan=utc_days
        )  # in UTC both early records fall on the 28th
        assert [(r["bucket_start"], r["key_id"], r["requests"]) for r in utc_rows] == [
            (_ts(2026, 3, 28, tz=UTC), "k1", 2),
            (_ts(2026, 3, 29, tz=UTC), "k1", 4),  # Paris' midnight of the 30th is 22:00 UTC on the 29th
            (_ts(2026, 3, 29, tz=UTC), "k2", 1),
        ]
        start = _ts(2026, 3, 29, 0, 5)
        hours = plan(start, _ts(2026, 3, 29, 4), "hour", PARIS)
        hourly = await recorder.series(
            key_id="k1", all_keys=False, start=start, end=_ts(2026, 3, 29, 4), model="m", plan=hours
        )
        assert [(r["bucket_start"], r["requests"]) for r in hourly] == [
            (_ts(2026, 3, 29, 0), 1),  # 00:10 (the 00:00 bucket, though the period starts at 00:05)
            (_ts(2026, 3, 29, 1), 1),
            (_ts(2026, 3, 29, 3), 1),  # the hour after 01:59 is 03:00
        ]
    finally:
        await db.dispose()
