"""Usage for the caller (admins: any key or all keys), summed over the period or per hour or day."""

from __future__ import annotations

import time
from typing import Any

from mmserve.api.state import AppState
from mmserve.control.auth import ADMIN_KEY_ID
from mmserve.control.context import Principal
from mmserve.control.usage import SUMMED
from mmserve.control.usage_series import GroupBy, plan, zone
from mmserve.errors import InvalidRequestError, PermissionDeniedError

DEFAULT_PERIOD_S = 30 * 86400


class UsageService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def report(
        self,
        who: Principal,
        *,
        start: float | None,
        end: float | None,
        model: str | None,
        key_id: str | None,
        group_by: GroupBy | None,
        tz: str | None,
    ) -> dict[str, Any]:
        if key_id is not None and key_id != who.key_id and not who.admin:
            raise PermissionDeniedError("Only an admin key may read another key's usage.", param="key_id")
        now = time.time()
        start = start if start is not None else now - DEFAULT_PERIOD_S
        end = end if end is not None else now + 1
        if end <= start:
            raise InvalidRequestError(
                "'end' must be after 'start' (both are Unix times).", param="end", code="invalid_period"
            )
        if tz is not None and group_by is None:
            raise InvalidRequestError(
                "'tz' goes with group_by=hour or group_by=day.", param="tz", code="invalid_combination"
            )
        all_keys = key_id == "all" or (key_id is None and who.key_id is None)
        whose = key_id if key_id not in (None, "all") else who.key_id
        out: dict[str, Any] = {
            "object": "usage",
            "start": start,
            "end": end,
            "key_id": "all" if all_keys else (key_id or who.key_id),
        }
        if group_by is None:
            rows = await self.state.usage.totals(key_id=whose, all_keys=all_keys, start=start, end=end, model=model)
        else:
            zi = zone(tz)
            buckets = plan(start, end, group_by, zi)
            out |= {"group_by": group_by, "tz": zi.key, "buckets": buckets.starts}
            rows = await self.state.usage.series(
                key_id=whose, all_keys=all_keys, start=start, end=end, model=model, plan=buckets
            )
        names = await self._names({r["key_id"] for r in rows if r["key_id"] is not None})
        out["data"] = [{**r, "key_name": names.get(r["key_id"]) if r["key_id"] else None} for r in rows]
        out["total"] = {c: sum(r[c] for r in rows) for c in ("requests", *SUMMED)}
        return out

    async def _names(self, ids: set[str]) -> dict[str, str]:
        names = await self.state.keys.names(ids - {ADMIN_KEY_ID})
        return {ADMIN_KEY_ID: ADMIN_KEY_ID, **names} if ADMIN_KEY_ID in ids else names
