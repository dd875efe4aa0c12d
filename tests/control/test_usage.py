"""The usage recorder: records are written in batches and none is lost at shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mmserve.control.usage import UsageEvent, UsageRecorder, UsageRow
from mmserve.db import Database


class SlowSessions:
    """Session factory whose sessions take a while to open: a write is in progress for that long."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.writing = asyncio.Event()

    def __call__(self) -> Any:
        outer = self

        class Slow:
            async def __aenter__(self) -> Any:
                self.cm = outer.real()
                session = await self.cm.__aenter__()
                outer.writing.set()
                await asyncio.sleep(0.2)
                return session

            async def __aexit__(self, *exc: Any) -> Any:
                return await self.cm.__aexit__(*exc)

        return Slow()


async def _count(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(UsageRow)) or 0)


async def test_stopping_during_a_write_loses_no_record(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'usage.db'}")
    await db.upgrade()
    real = db.session
    recorder = UsageRecorder(db, flush_interval_s=0.01)
    for i in range(3):
        recorder.record(UsageEvent(model="m", task="chat", endpoint="chat.completions", input_tokens=i))
    db.session = SlowSessions(real)  # type: ignore[assignment]
    await recorder.start()
    await db.session.writing.wait()  # type: ignore[attr-defined]
    await recorder.stop()  # shutdown arrives while the background writer is mid-batch
    db.session = real  # type: ignore[assignment]
    assert await _count(db) == 3
    await db.dispose()
