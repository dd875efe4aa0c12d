"""The usage write-ahead journal: every usage record is on disk before its response ends.

The recorder writes records to SQL in batches (one transaction per ``usage_flush_interval_s``,
so that metering costs the request path no database round trip); a process killed between two
batches (kill -9, an OOM kill) lost the records of every request answered since the last one.
Now :meth:`UsageJournal.append` first writes the record as one JSON line with one
``os.write`` on an append-only file: once it returns, the kernel holds the bytes, and they
survive the death of the process (not of the machine: like SQLite's ``synchronous=NORMAL``,
there is no fsync per request). It costs microseconds, on the request path, and no I/O wait.

Files: ``<dir>/<owner>.lock`` (held with ``flock`` for the life of the process: the kernel
releases it when the process dies, however it dies) and segments ``<dir>/<owner>-<n>.jsonl``.
Each batch the recorder writes to SQL is exactly the closed segments (:meth:`rotate`); their
names are inserted in the same transaction (table ``usage_journal_done``), then the files are
removed and, in the next batch, the names. At start (:meth:`orphans`) the segments of owners
whose lock is free (their process is gone) are replayed: a segment whose name is in the table
was committed already (the process died between commit and removal) and is only removed; the
others are inserted with their name, in one transaction each. A torn last line (the process
died mid-write) is skipped: its response had not ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from mmserve.db import Base


class JournalDoneRow(Base):
    """Segments whose records are in ``usage_records`` (kept from commit until the file is removed)."""

    __tablename__ = "usage_journal_done"

    segment: Mapped[str] = mapped_column(String(200), primary_key=True)


@dataclass(frozen=True)
class Orphan:
    """The journal of a process that is gone: replay its segments, then :meth:`release` it."""

    lock: Path
    fd: int
    segments: list[Path]

    def records(self, segment: Path) -> Iterator[dict[str, Any]]:
        for line in segment.read_bytes().splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue  # torn by the crash mid-write: that response never ended

    def release(self) -> None:
        for path in self.segments:
            path.unlink(missing_ok=True)
        self.lock.unlink(missing_ok=True)
        os.close(self.fd)


class UsageJournal:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40]
        self.owner = f"{host}-{os.getpid()}-{secrets.token_hex(4)}"
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._seq = 0
        self._current: Path | None = None

    def open(self) -> None:
        """Take this process's lock (its segments are its own while it lives)."""
        if self._lock_fd is not None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / f"{self.owner}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd = fd

    def append(self, record: dict[str, Any]) -> None:
        """Write one record; it survives this process's death once this returns."""
        if self._fd is None:
            self.open()  # a record before start(), or after stop(): still journaled, still owned
            self._seq += 1
            self._current = self.dir / f"{self.owner}-{self._seq}.jsonl"
            self._fd = os.open(self._current, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        written = os.write(self._fd, line)
        if written != len(line):  # a regular file takes a short write only when the disk is full
            raise OSError(f"usage journal: short write ({written} of {len(line)} bytes)")

    def rotate(self) -> Path | None:
        """Close the current segment (it holds what was appended since the last rotate) and return it."""
        if self._fd is None:
            return None
        os.close(self._fd)
        self._fd = None
        closed, self._current = self._current, None
        return closed

    def orphans(self) -> list[Orphan]:
        """The journals of processes that are gone, each locked for the caller (another process
        starting at the same time gets the others)."""
        found = []
        for lock in sorted(self.dir.glob("*.lock")):
            owner = lock.name.removesuffix(".lock")
            if owner == self.owner:
                continue
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                continue  # released by whoever replayed it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its process is alive
                os.close(fd)
                continue
            if not lock.exists():  # replayed and removed between our glob and our lock
                os.close(fd)
                continue
            segments = sorted(self.dir.glob(f"{owner}-*.jsonl"), key=_seq_of)
            found.append(Orphan(lock, fd, segments))
        return found

    def close(self) -> None:
        """A clean stop, once every segment is committed: nothing is left to replay."""
        self.rotate()
        if self._lock_fd is not None:
            (self.dir / f"{self.owner}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None


def _seq_of(path: Path) -> int:
    with contextlib.suppress(ValueError):
        return int(path.stem.rsplit("-", 1)[1])
    return 0
