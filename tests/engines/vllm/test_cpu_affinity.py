"""vLLM's EngineCore is bound to its Worker's cores on a CPU host (real processes, named as vLLM names them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from mmserve.engines.vllm.cpu_affinity import pin_engine_core

# a process with a few threads, as vLLM's have, that lives until killed
LIVE = """import threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
time.sleep(60)"""


@contextmanager
def named(name: str) -> Iterator[int]:
    """A Python process whose argv[0] is ``name`` (vLLM renames its processes so)."""
    proc = subprocess.Popen(["bash", "-c", f'exec -a "{name}" {sys.executable} -c "$0"', LIVE])
    try:
        deadline = time.monotonic() + 30
        while len(os.listdir(f"/proc/{proc.pid}/task")) < 4:  # its threads started
            assert proc.poll() is None and time.monotonic() < deadline, f"{name} did not start its threads"
            time.sleep(0.01)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _threads_affinity(pid: int) -> list[set[int]]:
    return [os.sched_getaffinity(int(t)) for t in os.listdir(f"/proc/{pid}/task")]


def test_the_engine_core_shares_the_cores_its_worker_is_bound_to() -> None:
    every = os.sched_getaffinity(0)
    with named("VLLM::Worker") as worker, named("VLLM::EngineCore") as core, named("python") as api:
        os.sched_setaffinity(worker, {min(every)})
        pids = [worker, core, api]
        if len(every) < 2:  # one core: the Worker is bound to every core, nothing to share
            assert pin_engine_core(pids) is None
            return
        assert pin_engine_core(pids) == {min(every)}
        assert _threads_affinity(core) == [{min(every)}] * 4  # every thread of it
        assert os.sched_getaffinity(api) == every  # the API server keeps every core


def test_nothing_changes_when_the_worker_may_run_anywhere() -> None:
    every = os.sched_getaffinity(0)
    with named("VLLM::Worker") as worker, named("VLLM::EngineCore") as core:
        assert pin_engine_core([worker, core]) is None
        assert _threads_affinity(core) == [every] * 4
    assert pin_engine_core([os.getpid()]) is None  # no vLLM processes at all
