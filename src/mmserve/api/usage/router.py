"""GET /v1/usage: metered usage per model for the calling key (admins: any key or all keys),
summed over the period or, with ``group_by``, per local hour or day."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from mmserve.api.openapi import errors
from mmserve.api.state import AppState, get_state
from mmserve.api.usage.service import UsageService
from mmserve.control.context import principal

router = APIRouter(tags=["usage"])
MAX_TIME = 32_503_680_000  # the year 3000: far from the end of the calendar (year 9999) in any time zone


@router.get("/v1/usage", responses=errors(403))
async def usage(
    start: float | None = Query(
        default=None, allow_inf_nan=False, ge=0, le=MAX_TIME, description="Unix time, inclusive (default: 30 days ago)."
    ),
    end: float | None = Query(
        default=None, allow_inf_nan=False, ge=0, le=MAX_TIME, description="Unix time, exclusive (default: now)."
    ),
    model: str | None = Query(default=None),
    key_id: str | None = Query(default=None, description="Admins only: another key's usage, or 'all'."),
    group_by: Literal["hour", "day"] | None = Query(
        default=None, description="Rows per local hour or day (with bucket_start) instead of period totals."
    ),
    tz: str | None = Query(default=None, max_length=64, description="IANA time zone of the buckets (default UTC)."),
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    return await UsageService(state).report(
        principal(), start=start, end=end, model=model, key_id=key_id, group_by=group_by, tz=tz
    )
