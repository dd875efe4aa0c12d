from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from mmserve.db import Database
from mmserve.jobs.store import VideoJob, VideoJobStore, new_job_id


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop: aiosqlite binds to it
async def store(tmp_path: Path) -> AsyncIterator[VideoJobStore]:
    db = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    await db.create_all()
    yield VideoJobStore(db)
    await db.dispose()


def make_job(model: str = "m", owner: str | None = None, **kw: object) -> VideoJob:
    values: dict = dict(model=model, prompt="a cat", width=64, height=48, seconds=1.0, fps=8, num_frames=8, seed=7)
    values.update(kw)
    return VideoJob(id=new_job_id(), owner=owner, **values)
