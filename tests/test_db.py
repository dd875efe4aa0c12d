"""The shared database: URLs, SQLite pragmas, and concurrent writers that never see 'database is locked'."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from mmserve.db import Database, async_url, database_url
from mmserve.jobs.store import VideoJob, VideoJobStore, new_job_id
from mmserve.settings import Settings


def test_default_url_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    url = database_url(Settings(data_dir=tmp_path))
    assert url.startswith("sqlite+aiosqlite:///") and url.endswith(str(tmp_path.resolve() / "mmserve.db"))
    assert database_url(Settings(data_dir=tmp_path, database_url="postgresql://u:p@db/mm")) == "postgresql://u:p@db/mm"


def test_plain_urls_get_async_drivers() -> None:
    assert async_url("sqlite:////var/mm.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("postgresql+psycopg2://u@h/db").drivername == "postgresql+psycopg"
    assert async_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    await db.upgrade()
    try:
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000
        assert (tmp_path / "a.db").exists()
    finally:
        await db.dispose()


def _job(model: str = "m") -> VideoJob:
    return VideoJob(
        id=new_job_id(), model=model, prompt="p", width=64, height=48, seconds=1, fps=8, num_frames=8, seed=1
    )


async def test_two_databases_on_one_file_write_concurrently(tmp_path: Path) -> None:
    """Two engines (as two processes would) interleave 2 x 40 inserts and claims without a lock error."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    one, two = Database(url), Database(url)
    await one.upgrade()
    stores = [VideoJobStore(one), VideoJobStore(two)]
    try:
        jobs = await asyncio.gather(*(stores[i % 2].create(_job()) for i in range(80)))
        claims = await asyncio.gather(*(stores[i % 2].claim(j.id, f"w{i % 2}") for i, j in enumerate(jobs)))
        assert all(c is not None for c in claims)
        page = await stores[0].page(owner=None, after=None, limit=100, order="asc")
        assert page is not None and len(page[0]) == 80 and {j.status for j in page[0]} == {"in_progress"}
    finally:
        await one.dispose()
        await two.dispose()


async def test_postgres_round_trip(pg_url: str) -> None:
    db = Database(pg_url)
    await db.upgrade()
    try:
        store = VideoJobStore(db)
        job = await store.create(_job())
        assert (await store.claim(job.id, "w")) is not None
        assert (await store.delete(job.id, owner=None)) is not None
    finally:
        await db.dispose()
