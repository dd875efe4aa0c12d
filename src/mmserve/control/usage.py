"""Usage metering: one record per request (key, model, tokens, images, audio/video seconds, cost).

``UsageRecorder.record()`` appends the record to the write-ahead journal (one ``os.write``:
durable against a killed process before the response ends, see
:mod:`mmserve.control.usage_journal`) and to an in-memory queue; a background task writes the
queue to SQL in batches every ``usage_flush_interval_s`` (no database round trip on the request
path), ``stop()`` flushes what is left, and ``start()`` replays the journals that processes
killed between two batches left behind. Costs come from the card's prices at the time of the
request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy import Float, Integer, Select, String, case, cast, delete, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from mmserve.cards import ModelCard
from mmserve.control.usage_journal import JournalDoneRow, UsageJournal
from mmserve.control.usage_series import BucketPlan
from mmserve.db import Base, Database

log = logging.getLogger("mmserve.usage")


class UsageRow(Base):
    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    task: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    image_tokens: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    audio_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    video_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)


@dataclass
class UsageEvent:
    model: str
    task: str
    endpoint: str
    key_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0
    images: int = 0
    audio_seconds: float = 0.0
    video_seconds: float = 0.0
    cost: float = 0.0
    latency_s: float = 0.0
    created_at: float = field(default_factory=time.time)


def cost_of(card: ModelCard, e: UsageEvent) -> float:
    p = card.pricing
    return (
        p.input_per_1m_tokens * e.input_tokens / 1e6
        + p.output_per_1m_tokens * e.output_tokens / 1e6
        + p.per_image * e.images
        + p.per_audio_second * e.audio_seconds
        + p.per_video_second * e.video_seconds
    )


_COLUMNS = {f.name for f in fields(UsageEvent)}


def _columns(record: dict[str, Any]) -> dict[str, Any]:
    """A journal line's fields that are columns (a newer version may have written more)."""
    return {k: v for k, v in record.items() if k in _COLUMNS}


SUMMED = ("input_tokens", "output_tokens", "image_tokens", "images", "audio_seconds", "video_seconds", "cost")


class UsageRecorder:
    def __init__(self, db: Database, *, flush_interval_s: float = 0.5, journal_dir: Path | None = None) -> None:
        self.db = db
        self.flush_interval_s = flush_interval_s
        self.journal = UsageJournal(journal_dir) if journal_dir is not None else None
        self._pending: list[UsageEvent] = []
        self._segments: list[Path] = []  # closed journal segments whose records are not committed yet
        self._forget: list[str] = []  # committed segments, removed: their names go in the next transaction
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._journal_failed = False

    def record(self, event: UsageEvent) -> None:
        if self.journal is not None:
            try:
                self.journal.append(vars(event))  # flat fields: no deep copy (asdict) needed
            except OSError:  # e.g. a full disk: the batch write still has it; only a crash would lose it now
                if not self._journal_failed:
                    log.exception("writing the usage journal failed; records are kept in memory until written")
                self._journal_failed = True
        self._pending.append(event)

    async def start(self) -> None:
        if self.journal is not None:
            self.journal.open()
            try:
                await self.replay()
            except Exception:  # left on disk: the next start replays them
                log.exception("replaying the usage journals of a stopped process failed")
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            # not in the middle of a write: cancelled there, its batch would be lost (or written twice)
            async with self._lock:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()
        await self.flush()  # the names of the segments the last batch removed
        if self.journal is not None and not self._pending and not self._segments:
            self.journal.close()

    async def flush(self) -> int:
        async with self._lock:
            batch, self._pending = self._pending, []
            if self.journal is not None and (segment := self.journal.rotate()) is not None:
                self._segments.append(segment)
            segments, forget = list(self._segments), list(self._forget)
            if not batch and not segments and not forget:
                return 0
            try:
                async with self.db.session() as s, s.begin():
                    # Core inserts (one executemany each), not ORM objects: this runs on the event
                    # loop every flush_interval_s, beside the requests (py-spy: the ORM's unit of
                    # work was most of the flush's time)
                    if batch:
                        await s.execute(insert(Base.metadata.tables[UsageRow.__tablename__]), [vars(e) for e in batch])
                    if segments:
                        await s.execute(
                            insert(Base.metadata.tables[JournalDoneRow.__tablename__]),
                            [{"segment": p.name} for p in segments],
                        )
                    if forget:
                        await s.execute(delete(JournalDoneRow).where(JournalDoneRow.segment.in_(forget)))
            except Exception:
                self._pending[:0] = batch  # keep them for the next attempt (their segments stay too)
                raise
            for path in segments:
                path.unlink(missing_ok=True)
            self._segments = []
            self._forget = [p.name for p in segments]
            return len(batch)

    async def replay(self) -> int:
        """Write the records that processes killed between two batches left in their journals."""
        assert self.journal is not None
        replayed = 0
        for orphan in self.journal.orphans():
            names = [p.name for p in orphan.segments]
            try:
                for segment in orphan.segments:
                    async with self.db.session() as s, s.begin():
                        if await s.get(JournalDoneRow, segment.name) is not None:
                            continue  # committed before its process died: only the file was left
                        rows = [UsageRow(**_columns(r)) for r in orphan.records(segment)]
                        s.add_all([*rows, JournalDoneRow(segment=segment.name)])
                        replayed += len(rows)
                orphan.release()
            except BaseException:
                os.close(orphan.fd)  # unlocked, files kept: replayed at the next start
                raise
            if names:
                async with self.db.session() as s, s.begin():
                    await s.execute(delete(JournalDoneRow).where(JournalDoneRow.segment.in_(names)))
        if replayed:
            log.warning("recovered %d usage record(s) that a stopped process had not written yet", replayed)
        return replayed

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # the writer must never die; records are kept and retried
                log.exception("writing usage records failed")

    async def totals(
        self, *, key_id: str | None, all_keys: bool, start: float | None, end: float | None, model: str | None
    ) -> list[dict[str, Any]]:
        """Sums per key and model over [start, end)."""
        await self.flush()
        q = select(UsageRow.key_id, UsageRow.model, func.count().label("requests"), *_sums()).group_by(
            UsageRow.key_id, UsageRow.model
        )
        q = _where(q, key_id=key_id, all_keys=all_keys, start=start, end=end, model=model)
        async with self.db.session() as s:
            rows = (await s.execute(q.order_by(UsageRow.key_id, UsageRow.model))).all()
        return [
            {"key_id": r.key_id, "model": r.model, "requests": r.requests, **{c: getattr(r, c) or 0 for c in SUMMED}}
            for r in rows
        ]

    async def series(
        self, *, key_id: str | None, all_keys: bool, start: float, end: float, model: str | None, plan: BucketPlan
    ) -> list[dict[str, Any]]:
        """Sums per bucket of ``plan`` (local hours or days), key and model over [start, end), oldest first."""
        await self.flush()
        number = self._bucket_number(plan)
        q = select(
            UsageRow.key_id, UsageRow.model, number.label("bucket"), func.count().label("requests"), *_sums()
        ).group_by(UsageRow.key_id, UsageRow.model, number)
        q = _where(q, key_id=key_id, all_keys=all_keys, start=start, end=end, model=model)
        async with self.db.session() as s:
            rows = (await s.execute(q)).all()
        out: dict[tuple[int, str, str], dict[str, Any]] = {}
        for r in rows:  # two numbers may name one bucket only through the plan's fallback
            bucket = plan.start_of(int(r.bucket))
            row = out.setdefault(
                (bucket, r.key_id or "", r.model),
                {"bucket_start": bucket, "key_id": r.key_id, "model": r.model, "requests": 0}
                | dict.fromkeys(SUMMED, 0),
            )
            row["requests"] += r.requests
            for c in SUMMED:
                row[c] += getattr(r, c) or 0
        return [out[k] for k in sorted(out)]

    def _bucket_number(self, plan: BucketPlan) -> Any:
        """``floor((created_at + shift) / step)`` with each piece's shift; created_at + shift > 0,
        so SQLite's truncating integer cast is a floor (Postgres has floor(), its cast rounds)."""

        def number(shift: int) -> Any:
            x = (UsageRow.created_at + shift) / plan.step
            return cast(x, Integer) if self.db.is_sqlite else func.floor(x)

        *cut, (_, last) = plan.pieces
        if not cut:
            return number(last)
        return case(*[(UsageRow.created_at < until, number(shift)) for until, shift in cut], else_=number(last))


def _sums() -> list[Any]:
    return [func.sum(getattr(UsageRow, c)).label(c) for c in SUMMED]


def _where(
    q: Select[Any], *, key_id: str | None, all_keys: bool, start: float | None, end: float | None, model: str | None
) -> Select[Any]:
    if not all_keys:
        q = q.where(UsageRow.key_id == key_id) if key_id is not None else q.where(UsageRow.key_id.is_(None))
    if start is not None:
        q = q.where(UsageRow.created_at >= start)
    if end is not None:
        q = q.where(UsageRow.created_at < end)
    if model is not None:
        q = q.where(UsageRow.model == model)
    return q
