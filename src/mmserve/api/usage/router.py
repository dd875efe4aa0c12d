"""GET /v1/usage: metered usage per model for the calling key (admins: any key or all keys)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query

from mmserve.api.openapi import errors
from mmserve.api.state import AppState, get_state
from mmserve.control.context import principal
from mmserve.control.usage import SUMMED
from mmserve.errors import PermissionDeniedError

router = APIRouter(tags=["usage"])


@router.get("/v1/usage", responses=errors(403))
async def usage(
    start: float | None = Query(
        default=None, allow_inf_nan=False, description="Unix time, inclusive (default: 30 days ago)."
    ),
    end: float | None = Query(default=None, allow_inf_nan=False, description="Unix time, exclusive (default: now)."),
    model: str | None = Query(default=None),
    key_id: str | None = Query(default=None, description="Admins only: another key's usage, or 'all'."),
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    who = principal()
    if key_id is not None and key_id != who.key_id and not who.admin:
        raise PermissionDeniedError("Only an admin key may read another key's usage.", param="key_id")
    start = start if start is not None else time.time() - 30 * 86400
    end = end if end is not None else time.time() + 1
    all_keys = key_id == "all" or (key_id is None and who.key_id is None)
    rows = await state.usage.totals(
        key_id=key_id if key_id not in (None, "all") else who.key_id,
        all_keys=all_keys,
        start=start,
        end=end,
        model=model,
    )
    total = {c: sum(r[c] for r in rows) for c in ("requests", *SUMMED)}
    return {
        "object": "usage",
        "start": start,
        "end": end,
        "key_id": "all" if all_keys else (key_id or who.key_id),
        "data": rows,
        "total": total,
    }
