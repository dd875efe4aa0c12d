"""Job-store fixtures: SQLite always; PostgreSQL too when MMSERVE_TEST_DATABASE_URL names one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mmserve.db import Base, Database
from mmserve.jobs.store import VideoJob, VideoJobStore, new_job_id

BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get("MMSERVE_TEST_DATABASE_URL") else [])


@pytest_asyncio.fixture(loop_scope="function", params=BACKENDS)  # the tests' own loop: drivers bind to it
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VideoJobStore]:
    if request.param == "postgres":
        db = Database(os.environ["MMSERVE_TEST_DATABASE_URL"])
        async with db.engine.begin() as conn:  # a clean schema for every test
            await conn.run_sync(Base.metadata.drop_all)
    else:
        db = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    await db.upgrade()
    yield VideoJobStore(db)
    await db.dispose()


def make_job(model: str = "m", owner: str | None = None, **kw: object) -> VideoJob:
    values: dict = dict(model=model, prompt="a cat", width=64, height=48, seconds=1.0, fps=8, num_frames=8, seed=7)
    values.update(kw)
    return VideoJob(id=new_job_id(), owner=owner, **values)
