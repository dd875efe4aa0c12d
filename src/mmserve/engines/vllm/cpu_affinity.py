"""On a CPU host, run vLLM's EngineCore on its Worker's cores, so that its API server keeps a core.

vLLM's CPU build binds the Worker's OpenMP threads to every core but the ones it reserves for
"the scheduler process" (one, by default), and leaves its other processes unbound. While it
generates, the EngineCore waits for the Worker by polling a shared-memory queue with
``sched_yield``, so it keeps most of a core busy, and that core is the reserved one: the API
server, mmserve and the clients are left what the poll does not take. Measured on 2 cores
(1024 streamed tokens): the Worker at ~95% of its core, the EngineCore at ~62% of the other,
the API server at ~20%; in most runs the API server sent every token at the end, together, and
a client's disconnect reached it only after the answer was done, so nothing could be aborted.

With the EngineCore's threads bound to the Worker's cores, its poll yields to the Worker
(the thread it waits for) instead of to the API server: in the same runs the tokens streamed
as they were made, every time, for ~15% longer answers (the scheduling work shares the
Worker's core). Nothing changes where the Worker is not bound (GPUs, ``nobind``) or is bound
to every core.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger("mmserve.engines.vllm")


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return ""


def pin_engine_core(pids: list[int]) -> set[int] | None:
    """Bind every thread of the EngineCore among ``pids`` to its Worker's cores; those cores, or None if not done."""
    names = {pid: _name(pid) for pid in pids}
    workers = [p for p, n in names.items() if n.startswith("VLLM::Worker")]
    cores = [p for p, n in names.items() if n.startswith("VLLM::EngineCore")]
    if not workers or not cores:
        return None
    try:
        bound: set[int] = set()
        for worker in workers:
            bound |= os.sched_getaffinity(worker)
        if bound >= os.sched_getaffinity(0):  # the Worker may run anywhere: nothing to share
            return None
        for core in cores:
            for thread in os.listdir(f"/proc/{core}/task"):
                with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                    os.sched_setaffinity(int(thread), bound)
    except OSError as e:  # the processes ended, or this system does not let us
        log.info("could not bind vLLM's EngineCore to its Worker's cores: %s", e)
        return None
    return bound
