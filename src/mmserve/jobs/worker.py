"""Who runs a job, and whether that runner is still alive.

A runner's id is ``host/pid/boot`` (``boot`` is random per start). A job left
``in_progress`` by another runner is taken over when that runner is provably dead — it ran
on this host and its process is gone, or it was an earlier start of this very process id
(containers often run the server as PID 1 on every start) — or when its heartbeat is older
than ``jobs.stale_after_s`` (a runner on another host, e.g. several servers sharing one
PostgreSQL database).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerId:
    host: str
    pid: int
    boot: str

    @classmethod
    def current(cls) -> WorkerId:
        return cls(socket.gethostname()[:100], os.getpid(), secrets.token_hex(6))

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.boot}"

    @classmethod
    def parse(cls, text: str) -> WorkerId | None:
        host, _, rest = text.rpartition("/")
        host, _, pid = host.rpartition("/")
        if not host or not pid.isdigit():
            return None
        return cls(host, int(pid), rest)


def is_dead(other: str | None, me: WorkerId) -> bool:
    """True when ``other`` certainly no longer runs (False: alive or cannot tell from here)."""
    if other is None:
        return True
    worker = WorkerId.parse(other)
    if worker is None or worker.host != me.host:
        return False
    if worker.pid == me.pid:
        return worker.boot != me.boot
    return not _process_exists(worker.pid)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True
