"""The usage recorder: records are written in batches and none is lost at shutdown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
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


# ------------------------------------------------------------------ the write-ahead journal


def _event(i: int = 1) -> UsageEvent:
    return UsageEvent(model="m", task="chat", endpoint="chat.completions", input_tokens=i)


async def test_records_reach_the_journal_before_any_batch(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'usage.db'}")
    await db.upgrade()
    recorder = UsageRecorder(db, flush_interval_s=3600, journal_dir=tmp_path / "journal")
    await recorder.start()
    for i in range(5):
        recorder.record(_event(i))
    lines = [json.loads(x) for p in (tmp_path / "journal").glob("*.jsonl") for x in p.read_text().splitlines()]
    assert [r["input_tokens"] for r in lines] == [0, 1, 2, 3, 4]
    assert await recorder.flush() == 5 and list((tmp_path / "journal").glob("*.jsonl")) == []
    await recorder.stop()
    assert list((tmp_path / "journal").iterdir()) == []  # a clean stop leaves nothing to replay
    assert await _count(db) == 5
    await db.dispose()


def _dead_process_journal(journal: Path, tmp_path: Path, lines: list[bytes]) -> str:
    """A journal written by a process that is gone (its lock file exists, nobody holds it)."""
    journal.mkdir(exist_ok=True)
    owner = "deadhost-1-abcd"
    (journal / f"{owner}.lock").touch()
    (journal / f"{owner}-1.jsonl").write_bytes(b"".join(lines))
    return owner


async def test_a_dead_process_journal_is_replayed_once_and_a_torn_line_skipped(tmp_path: Path) -> None:
    from dataclasses import asdict

    db = Database(f"sqlite:///{tmp_path / 'usage.db'}")
    await db.upgrade()
    journal = tmp_path / "journal"
    good = [json.dumps(asdict(_event(i))).encode() + b"\n" for i in range(3)]
    _dead_process_journal(journal, tmp_path, [*good, b'{"model": "m", "ta'])  # killed mid-write
    recorder = UsageRecorder(db, flush_interval_s=3600, journal_dir=journal)
    await recorder.start()
    assert await _count(db) == 3
    assert [p.suffix for p in journal.iterdir()] == [".lock"]  # only the new process's own lock
    await recorder.stop()
    again = UsageRecorder(db, flush_interval_s=3600, journal_dir=journal)
    await again.start()
    await again.stop()
    assert await _count(db) == 3
    await db.dispose()


async def test_a_segment_committed_before_the_crash_is_not_counted_twice(tmp_path: Path) -> None:
    from dataclasses import asdict

    from mmserve.control.usage_journal import JournalDoneRow

    db = Database(f"sqlite:///{tmp_path / 'usage.db'}")
    await db.upgrade()
    journal = tmp_path / "journal"
    owner = _dead_process_journal(journal, tmp_path, [json.dumps(asdict(_event())).encode() + b"\n"])
    async with db.session() as s, s.begin():  # its batch was committed; the process died before removing the file
        s.add_all([UsageRow(**asdict(_event())), JournalDoneRow(segment=f"{owner}-1.jsonl")])
    recorder = UsageRecorder(db, flush_interval_s=3600, journal_dir=journal)
    await recorder.start()
    await recorder.stop()
    assert await _count(db) == 1
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(JournalDoneRow)) == 0
    await db.dispose()


async def test_a_live_process_journal_is_left_alone(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'usage.db'}")
    await db.upgrade()
    journal = tmp_path / "journal"
    first = UsageRecorder(db, flush_interval_s=3600, journal_dir=journal)
    await first.start()
    first.record(_event())
    second = UsageRecorder(db, flush_interval_s=3600, journal_dir=journal)
    await second.start()  # the first is alive: its records are its own to write
    assert await _count(db) == 0
    await second.stop()
    await first.stop()
    assert await _count(db) == 1
    await db.dispose()


async def test_a_failed_batch_keeps_its_journal_until_written(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'usage.db'}")
    await db.upgrade()
    journal = tmp_path / "journal"
    recorder = UsageRecorder(db, flush_interval_s=3600, journal_dir=journal)
    await recorder.start()
    recorder.record(_event())
    real = db.session

    def broken() -> Any:
        raise OSError("database unreachable")

    db.session = broken  # type: ignore[assignment]
    with pytest.raises(OSError):
        await recorder.flush()
    recorder.record(_event())
    assert len(list(journal.glob("*.jsonl"))) == 2  # the failed batch's segment is kept, a new one started
    db.session = real  # type: ignore[assignment]
    assert await recorder.flush() == 2 and list(journal.glob("*.jsonl")) == []
    await recorder.stop()
    assert await _count(db) == 2
    await db.dispose()
