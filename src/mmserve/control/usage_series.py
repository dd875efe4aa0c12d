"""Usage over time: calendar buckets (hours or days) in any time zone, as SQL can group them.

A local day is not a fixed length (daylight saving time makes 23 and 25 hour days), so the
database cannot group by ``created_at // 86400``. A :class:`BucketPlan` cuts the period into
pieces of constant UTC offset (a new piece at each transition, found by bisection) and gives
SQL, per piece, a shift such that ``floor((created_at + shift) / step)`` is a number naming
the record's bucket; the plan maps those numbers back to bucket starts. Hours are simpler:
local hours are 3600 s apart in UTC (a repeated wall hour is two buckets), so their number
is counted from the first bucket. Either way the database returns one row per bucket, key
and model, whatever the number of records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mmserve.errors import InvalidRequestError

GroupBy = Literal["hour", "day"]
MAX_BUCKETS = 2000  # e.g. 83 days of hours; a request for more is refused (ask for days)
DAY_S = 86400
# keeps created_at + shift positive (SQLite's integer cast truncates toward zero, a floor only
# for positive numbers); whole days, so day numbers stay whole
_BIAS = 10 * DAY_S


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone ``name`` (default UTC); a 400 naming ``tz`` if there is none."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory of the database
        raise InvalidRequestError(
            f"Unknown time zone '{name}'. Use an IANA name such as 'UTC' or 'Europe/Paris'.",
            param="tz",
            code="unknown_time_zone",
        ) from None


def bucket_start(ts: float, group_by: GroupBy, tz: ZoneInfo) -> int:
    """The Unix time at which the local hour or day holding ``ts`` starts."""
    local = datetime.fromtimestamp(ts, tz)
    if group_by == "hour":  # a wall hour that repeats (DST ends) is two buckets: fold tells them apart
        start = datetime(local.year, local.month, local.day, local.hour, tzinfo=tz, fold=local.fold)
        # zones whose offset is not whole hours: the local hour still starts at a local :00
        return int(start.timestamp())
    return int(datetime(local.year, local.month, local.day, tzinfo=tz).timestamp())


def buckets(start: float, end: float, group_by: GroupBy, tz: ZoneInfo) -> list[int]:
    """The starts of every bucket that [start, end) touches, oldest first."""
    out: list[int] = []
    current = bucket_start(start, group_by, tz)
    while current < end:
        out.append(current)
        if len(out) > MAX_BUCKETS:
            raise InvalidRequestError(
                f"That period has more than {MAX_BUCKETS} {group_by}s; shorten it"
                + (" or use group_by=day." if group_by == "hour" else "."),
                param="group_by",
                code="server_limit",
            )
        if group_by == "hour":  # hours are 3600 s in UTC whatever the zone says on the wall
            current += 3600
        else:  # the next local midnight, 23, 24 or 25 hours later: found from the next day's noon
            noon = datetime.fromtimestamp(current, tz).replace(hour=12) + timedelta(days=1)
            current = bucket_start(noon.timestamp(), "day", tz)
    return out


def _offset(ts: float, tz: ZoneInfo) -> int:
    off = datetime.fromtimestamp(ts, tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def _transition(lo: int, hi: int, tz: ZoneInfo) -> int:
    """The first second in (lo, hi] whose UTC offset differs from lo's (there is one)."""
    before = _offset(lo, tz)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(mid, tz) == before:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True)
class BucketPlan:
    """How SQL numbers each record's bucket: ``floor((created_at + shift) / step)``, where ``shift``
    is that of the first piece whose ``until`` is past the record (None: the last piece)."""

    group_by: GroupBy
    tz: ZoneInfo
    starts: list[int]
    step: int
    pieces: list[tuple[int | None, int]]  # (until, shift)
    numbers: dict[int, int]  # bucket number -> bucket start

    def start_of(self, number: int) -> int:
        found = self.numbers.get(number)
        if found is not None:
            return found
        if self.group_by == "hour":  # hours count from the first bucket
            return self.starts[0] + number * 3600
        # a local date number (days since 1970-01-01 on the wall clock): that date's midnight
        day = datetime(1970, 1, 1) + timedelta(days=number - _BIAS // DAY_S, hours=12)
        return bucket_start(day.replace(tzinfo=self.tz).timestamp(), "day", self.tz)


def plan(start: float, end: float, group_by: GroupBy, tz: ZoneInfo) -> BucketPlan:
    """The buckets of [start, end) and how the database numbers them."""
    starts = buckets(start, end, group_by, tz)
    if group_by == "hour":
        return BucketPlan(group_by, tz, starts, 3600, [(None, -starts[0])], dict(enumerate(starts)))
    # a record's local date number is floor((t + its UTC offset) / day): one shift per stretch of
    # constant offset, cut where the offset changes (DST transitions, found by bisection)
    edges = [*starts, max(int(end), starts[-1])]
    pieces: list[tuple[int | None, int]] = []
    for a, b in pairwise(edges):
        if _offset(a, tz) != _offset(b, tz):
            pieces.append((_transition(a, b, tz), _offset(a, tz) + _BIAS))
    pieces.append((None, _offset(edges[-1], tz) + _BIAS))
    numbers = {(b + _offset(b, tz) + _BIAS) // DAY_S: b for b in starts}  # midnights: whole date numbers
    return BucketPlan(group_by, tz, starts, DAY_S, pieces, numbers)
