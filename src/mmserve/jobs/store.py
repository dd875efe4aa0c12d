"""The durable store of video jobs: one SQL table, short transactions, compare-and-set updates.

A job's life: ``queued`` -> ``in_progress`` (claimed by one runner, which stamps its
``worker_id`` and refreshes ``heartbeat_at``) -> ``completed`` or ``failed``. Every state
change is a single ``UPDATE ... WHERE`` on the expected state, so two runners (or a runner
and a DELETE) can never both win: the loser sees ``rowcount == 0`` and backs off. Deleting
a job removes its row (``DELETE ... RETURNING`` gives the caller the files to remove).

For metering (a later issue): a completed job's ``video_seconds`` is the length of the
video it produced (``num_frames / fps``), with ``model``, ``owner`` and ``completed_at``;
the runner also calls its ``on_completed`` hooks with the job as it completes.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text, delete, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from mmserve.db import Base, Database

Status = Literal["queued", "in_progress", "completed", "failed"]
TERMINAL: tuple[str, ...] = ("completed", "failed")


class VideoJobRow(Base):
    __tablename__ = "video_jobs"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # order + cursors
    id: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str | None] = mapped_column(String(128), index=True)  # API key owner; None without keys
    model: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    prompt: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)  # as requested
    fps: Mapped[int] = mapped_column(Integer)
    num_frames: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # negative_prompt, ...
    reference_artifact: Mapped[str | None] = mapped_column(String(64))  # image-to-video input
    video_artifact: Mapped[str | None] = mapped_column(String(64))
    thumbnail_artifact: Mapped[str | None] = mapped_column(String(64))
    spritesheet_artifact: Mapped[str | None] = mapped_column(String(64))
    video_seconds: Mapped[float | None] = mapped_column(Float)  # produced length: what metering bills
    timings: Mapped[dict[str, float] | None] = mapped_column(JSON)  # queued_s, engine_s, encode_s
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    completed_at: Mapped[float | None] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, index=True)

    __table_args__ = (Index("ix_video_jobs_status_model_seq", "status", "model", "seq"),)


@dataclass
class VideoJob:
    """A plain copy of one row: what services and the runner work with."""

    id: str
    model: str
    prompt: str
    width: int
    height: int
    seconds: float
    fps: int
    num_frames: int
    seed: int
    owner: str | None = None
    status: str = "queued"
    progress: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    reference_artifact: str | None = None
    video_artifact: str | None = None
    thumbnail_artifact: str | None = None
    spritesheet_artifact: str | None = None
    video_seconds: float | None = None
    timings: dict[str, float] | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    worker_id: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    heartbeat_at: float | None = None
    completed_at: float | None = None
    expires_at: float | None = None
    seq: int = 0

    @property
    def artifacts(self) -> list[str]:
        """Every stored file that belongs to this job."""
        ids = (self.reference_artifact, self.video_artifact, self.thumbnail_artifact, self.spritesheet_artifact)
        return [a for a in ids if a]

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


_FIELDS = [f.name for f in fields(VideoJob)]


def _job(row: VideoJobRow) -> VideoJob:
    return VideoJob(**{name: getattr(row, name) for name in _FIELDS})


def new_job_id() -> str:
    return "video_" + secrets.token_hex(16)


class VideoJobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ API side

    async def create(self, job: VideoJob) -> VideoJob:
        values = {name: getattr(job, name) for name in _FIELDS if name != "seq"}
        values.update(status="queued", progress=0, attempts=0, created_at=job.created_at or time.time())
        row = VideoJobRow(**values)
        async with self.db.session() as s, s.begin():
            s.add(row)
        return _job(row)

    async def get(self, job_id: str, *, owner: str | None) -> VideoJob | None:
        async with self.db.session() as s:
            row = await s.scalar(select(VideoJobRow).where(VideoJobRow.id == job_id, _owned(owner)))
            return _job(row) if row else None

    async def page(
        self, *, owner: str | None, after: str | None, limit: int, order: Literal["asc", "desc"]
    ) -> tuple[list[VideoJob], bool] | None:
        """One page and whether more follow; None when ``after`` names no job of this owner."""
        query = select(VideoJobRow).where(_owned(owner))
        async with self.db.session() as s:
            if after is not None:
                cursor = await s.scalar(select(VideoJobRow.seq).where(VideoJobRow.id == after, _owned(owner)))
                if cursor is None:
                    return None
                query = query.where(VideoJobRow.seq > cursor if order == "asc" else VideoJobRow.seq < cursor)
            query = query.order_by(VideoJobRow.seq.asc() if order == "asc" else VideoJobRow.seq.desc())
            rows = list(await s.scalars(query.limit(limit + 1)))
        return [_job(r) for r in rows[:limit]], len(rows) > limit

    async def delete(self, job_id: str, *, owner: str | None) -> VideoJob | None:
        """Remove the job; returns it as it was (with the files to remove), or None if unknown."""
        stmt = delete(VideoJobRow).where(VideoJobRow.id == job_id, _owned(owner)).returning(VideoJobRow)
        async with self.db.session() as s, s.begin():
            row = (await s.execute(stmt)).scalar_one_or_none()
            return _job(row) if row else None

    async def count_queued(self, model: str) -> int:
        async with self.db.session() as s:
            q = select(func.count()).where(VideoJobRow.model == model, VideoJobRow.status == "queued")
            return int(await s.scalar(q) or 0)

    # ------------------------------------------------------------------ runner side

    async def next_queued(self, model: str, limit: int) -> list[str]:
        q = (
            select(VideoJobRow.id)
            .where(VideoJobRow.model == model, VideoJobRow.status == "queued")
            .order_by(VideoJobRow.seq)
            .limit(limit)
        )
        async with self.db.session() as s:
            return list(await s.scalars(q))

    async def claim(self, job_id: str, worker_id: str) -> VideoJob | None:
        """queued -> in_progress for this worker; None if someone else got it first (or it was deleted).

        A claim is not an attempt: a server killed between the claim and the model's start
        (milliseconds after a submission) costs the job nothing; :meth:`start` counts it.
        """
        now = time.time()
        stmt = (
            update(VideoJobRow)
            .where(VideoJobRow.id == job_id, VideoJobRow.status == "queued")
            .values(
                status="in_progress",
                worker_id=worker_id,
                started_at=now,
                heartbeat_at=now,
                progress=0,
            )
            .returning(VideoJobRow)
        )
        async with self.db.session() as s, s.begin():
            row = (await s.execute(stmt)).scalar_one_or_none()
            return _job(row) if row else None

    async def start(self, job_id: str, worker_id: str) -> bool:
        """The model starts running the job: count the attempt. False when the job is no longer ours."""
        return await self._update(
            job_id, worker_id, expect_status="in_progress", attempts=VideoJobRow.attempts + 1, heartbeat_at=time.time()
        )

    async def heartbeat(self, job_id: str, worker_id: str, progress: int) -> bool:
        """Record progress; False when the job is no longer ours (deleted, or taken over)."""
        return await self._update(
            job_id, worker_id, progress=progress, heartbeat_at=time.time(), expect_status="in_progress"
        )

    async def save_params(self, job_id: str, worker_id: str, params: dict[str, Any]) -> bool:
        """Replace a running job's ``params`` (an engine's resume state); False when the job is no longer ours."""
        return await self._update(job_id, worker_id, expect_status="in_progress", params=params)

    async def rebind(self, job_id: str, worker_id: str, *, model: str, params: dict[str, Any]) -> bool:
        """Move a running job to another model (its own failed before starting it); False when not ours."""
        return await self._update(job_id, worker_id, expect_status="in_progress", model=model, params=params)

    async def complete(
        self,
        job_id: str,
        worker_id: str,
        *,
        video: str,
        thumbnail: str | None,
        spritesheet: str | None,
        video_seconds: float,
        timings: dict[str, float],
        expires_at: float | None,
    ) -> bool:
        return await self._update(
            job_id,
            worker_id,
            expect_status="in_progress",
            status="completed",
            progress=100,
            video_artifact=video,
            thumbnail_artifact=thumbnail,
            spritesheet_artifact=spritesheet,
            video_seconds=video_seconds,
            timings=timings,
            completed_at=time.time(),
            expires_at=expires_at,
        )

    async def fail(
        self, job_id: str, worker_id: str | None, *, code: str, message: str, expires_at: float | None
    ) -> bool:
        """Mark failed (from in_progress when ``worker_id`` is given, else from queued)."""
        return await self._update(
            job_id,
            worker_id,
            expect_status="in_progress" if worker_id else "queued",
            status="failed",
            error_code=code,
            error_message=message,
            completed_at=time.time(),
            expires_at=expires_at,
            reference_artifact=None,
        )

    async def requeue(self, job_id: str, worker_id: str, *, refund_attempt: bool = False) -> bool:
        """in_progress -> queued; ``refund_attempt`` takes back the count of a started run
        (a graceful shutdown stopped it: that start was no fault of the job)."""
        values: dict[str, Any] = {"status": "queued", "progress": 0, "worker_id": None, "heartbeat_at": None}
        if refund_attempt:
            values["attempts"] = VideoJobRow.attempts - 1
        return await self._update(job_id, worker_id, expect_status="in_progress", **values)

    async def in_progress(self) -> list[VideoJob]:
        q = select(VideoJobRow).where(VideoJobRow.status == "in_progress")
        async with self.db.session() as s:
            return [_job(r) for r in await s.scalars(q)]

    async def pop_expired(self, now: float | None = None) -> list[VideoJob]:
        """Delete finished jobs past ``expires_at``; returns them (their files are the caller's to remove)."""
        cutoff = time.time() if now is None else now
        stmt = (
            delete(VideoJobRow)
            .where(VideoJobRow.expires_at.is_not(None), VideoJobRow.expires_at <= cutoff)
            .returning(VideoJobRow)
        )
        async with self.db.session() as s, s.begin():
            return [_job(r) for r in (await s.execute(stmt)).scalars()]

    async def fail_queued_before(self, cutoff: float, *, code: str, message: str, expires_at: float) -> list[VideoJob]:
        """Fail every job queued since before ``cutoff``; returns them (their reference files are to remove)."""
        stmt = (
            update(VideoJobRow)
            .where(VideoJobRow.status == "queued", VideoJobRow.created_at < cutoff)
            .values(status="failed", error_code=code, error_message=message, completed_at=time.time())
            .values(expires_at=expires_at)
            .returning(VideoJobRow)
        )
        async with self.db.session() as s, s.begin():
            return [_job(r) for r in (await s.execute(stmt)).scalars()]

    async def _update(self, job_id: str, expect_worker: str | None, /, *, expect_status: str, **values: Any) -> bool:
        cond = [VideoJobRow.id == job_id, VideoJobRow.status == expect_status]
        if expect_worker is not None:
            cond.append(VideoJobRow.worker_id == expect_worker)
        async with self.db.session() as s, s.begin():
            result = await s.execute(update(VideoJobRow).where(*cond).values(**values))
            return bool(getattr(result, "rowcount", 0))


def _owned(owner: str | None) -> Any:
    """Jobs of this owner; without API keys every job has owner None and all are visible."""
    return VideoJobRow.owner.is_not_distinct_from(owner)
