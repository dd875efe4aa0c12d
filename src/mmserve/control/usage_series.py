"""Usage over time: calendar buckets (hours or days) in any time zone.

The database groups records by quarter hour (every time zone's offset is a multiple of 15
minutes, so a local hour or day is a whole number of quarter hours); this module maps each
quarter hour to the start of its local hour or day. Done here rather than in SQL because a
local day is not a fixed length (daylight saving time: 23 or 25 hours), which SQL's integer
arithmetic on timestamps cannot know.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mmserve.errors import InvalidRequestError

GroupBy = Literal["hour", "day"]
SLOT_S = 900  # what the database groups by
MAX_BUCKETS = 2000  # e.g. 83 days of hours; a request for more is refused (ask for days)


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone ``name`` (default UTC); a 400 naming ``tz`` if there is none."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory of the database
        raise InvalidRequestError(
            f"Unknown time zone '{name}'. Use an IANA name such as 'UTC' or 'Europe/Paris'.", param="tz"
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
            )
        if group_by == "hour":  # hours are 3600 s in UTC whatever the zone says on the wall
            current += 3600
        else:  # the next local midnight, 23, 24 or 25 hours later: found from the next day's noon
            noon = datetime.fromtimestamp(current, tz).replace(hour=12) + timedelta(days=1)
            current = bucket_start(noon.timestamp(), "day", tz)
    return out
