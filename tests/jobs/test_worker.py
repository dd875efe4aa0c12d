"""Telling a dead runner from a live one."""

from __future__ import annotations

import subprocess
import sys

from mmserve.jobs.worker import WorkerId, is_dead


def test_round_trip_and_garbage() -> None:
    me = WorkerId.current()
    assert WorkerId.parse(str(me)) == me
    assert WorkerId.parse("nonsense") is None
    assert not is_dead("nonsense", me)  # cannot tell: rely on the heartbeat


def test_an_earlier_start_of_this_pid_is_dead() -> None:
    me = WorkerId.current()
    assert not is_dead(str(me), me)
    assert is_dead(str(WorkerId(me.host, me.pid, "0ld")), me)  # e.g. PID 1 in a restarted container


def test_a_gone_process_on_this_host_is_dead_and_a_live_one_is_not() -> None:
    me = WorkerId.current()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert is_dead(str(WorkerId(me.host, proc.pid, "x")), me)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as live:
        try:
            assert not is_dead(str(WorkerId(me.host, live.pid, "x")), me)
        finally:
            live.kill()


def test_another_host_is_never_declared_dead() -> None:
    me = WorkerId.current()
    assert not is_dead(str(WorkerId("elsewhere", 1, "x")), me)
    assert is_dead(None, me)
