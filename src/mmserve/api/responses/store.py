"""Stored responses (the Responses API's ``store: true``): one SQL row per response, per API key, expiring.

A row keeps the response object as it was returned and its context: the input items of the
whole conversation up to it (those of the responses it continued, their outputs, and its own
input; not ``instructions``, which do not carry over). Continuing it with
``previous_response_id`` is its context plus its output plus the new input; no chain is walked,
so deleting or expiring an earlier response does not break a later one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Float, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from mmserve.db import Base, Database


class ResponseRow(Base):
    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(128), index=True)  # the API key; None without keys
    model: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    context: Mapped[list[Any]] = mapped_column(JSON)


@dataclass
class StoredResponse:
    body: dict[str, Any]
    context: list[Any]


class ResponseStore:
    def __init__(self, db: Database, *, ttl_s: float) -> None:
        self.db = db
        self.ttl_s = ttl_s

    async def put(self, body: dict[str, Any], context: list[Any], *, owner: str | None) -> None:
        now = time.time()
        row = ResponseRow(
            id=body["id"],
            owner=owner,
            model=body["model"],
            created_at=now,
            expires_at=now + self.ttl_s,
            body=body,
            context=context,
        )
        async with self.db.session() as s, s.begin():
            await s.merge(row)

    async def get(self, response_id: str, *, owner: str | None) -> StoredResponse | None:
        async with self.db.session() as s:
            row = await s.scalar(
                select(ResponseRow).where(
                    ResponseRow.id == response_id, _owned(owner), ResponseRow.expires_at > time.time()
                )
            )
        return StoredResponse(row.body, row.context) if row is not None else None

    async def delete(self, response_id: str, *, owner: str | None) -> bool:
        async with self.db.session() as s, s.begin():
            result = await s.execute(
                delete(ResponseRow).where(
                    ResponseRow.id == response_id, _owned(owner), ResponseRow.expires_at > time.time()
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def cleanup_expired(self) -> int:
        async with self.db.session() as s, s.begin():
            result = await s.execute(delete(ResponseRow).where(ResponseRow.expires_at <= time.time()))
        return int(getattr(result, "rowcount", 0) or 0)


def _owned(owner: str | None) -> Any:
    """This owner's responses; without API keys every response has owner None and all are visible."""
    return ResponseRow.owner.is_not_distinct_from(owner)
