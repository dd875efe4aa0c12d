"""The supervisor of a vLLM server process, with a stand-in server (tests/helpers/fake_vllm.py) as the process.

The real vLLM server goes through the same code in tests/e2e/chat/vllm/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mmserve.engines.vllm.process import ManagedServer, ServerStartError, Timing, group_pids, group_rss_bytes

FAKE = str(Path(__file__).resolve().parents[2] / "helpers" / "fake_vllm.py")
FAST = Timing(startup_timeout_s=30, health_interval_s=0.2, backoff_s=0.1, backoff_max_s=0.5, term_grace_s=1.0)


def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., ManagedServer]]:
    servers: list[ManagedServer] = []

    def factory(*args: str) -> ManagedServer:
        sock = tmp_path / f"s{len(servers)}.sock"
        argv = [sys.executable, FAKE, "--uds", str(sock), *args]
        server = ManagedServer("fake", argv, dict(os.environ), sock, tmp_path / "out.log", FAST)
        servers.append(server)
        return server

    yield factory
    for s in servers:
        s.stop()


def test_start_waits_for_health_and_stop_ends_the_wholegroup_pids(make: Callable[..., ManagedServer]) -> None:
    server = make()
    server.start()
    assert server.ready and server.pid is not None
    pid = server.pid
    _until(lambda: len(group_pids(pid)) == 2)  # the server and its "engine" child
    assert (group_rss_bytes(pid) or 0) > 1_000_000
    server.stop()
    assert group_pids(pid) == [] and not server.socket.exists() and server.state == "stopped"


def test_a_killed_server_is_restarted_and_its_orphans_are_killed(make: Callable[..., ManagedServer]) -> None:
    server = make()
    server.start()
    first = server.pid
    assert first is not None
    _until(lambda: len(group_pids(first)) == 2)
    os.kill(first, signal.SIGKILL)
    _until(lambda: server.pid != first and server.ready)
    assert server.restarts == 1 and group_pids(first) == []  # the orphaned child went with it
    assert "fake vLLM starting" in server.output_tail()


def test_a_server_failing_health_checks_is_restarted(make: Callable[..., ManagedServer], tmp_path: Path) -> None:
    sick = tmp_path / "sick"
    server = make("--sick", str(sick))
    server.start()
    first = server.pid
    sick.touch()
    _until(lambda: server.pid != first)
    assert not server.ready or server.restarts >= 1
    sick.unlink()
    _until(lambda: server.ready)


def test_a_server_that_cannot_start_fails_the_load_with_its_output(make: Callable[..., ManagedServer]) -> None:
    server = make("--fail", "CUDA out of memory")
    with pytest.raises(ServerStartError) as e:
        server.start()
    assert "exited with status 1" in str(e.value) and "CUDA out of memory" in str(e.value)
    assert server.state == "failed" and not server.ready


def test_the_server_dies_with_mmserve(tmp_path: Path) -> None:
    """SIGKILL of the process that started it (no clean-up runs) still ends the server: PR_SET_PDEATHSIG."""
    sock = tmp_path / "s.sock"
    code = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from mmserve.engines.vllm.process import ManagedServer, Timing
        s = ManagedServer("fake", [sys.executable, {FAKE!r}, "--uds", {str(sock)!r}], dict(os.environ),
                          Path({str(sock)!r}), Path({str(tmp_path / "out.log")!r}), Timing(30, 0.2, 0.1, 0.5))
        s.start()
        print(s.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert group_pids(pid)
        parent.kill()
        parent.wait()
        _until(lambda: pid not in group_pids(pid))  # the server got SIGTERM when its parent died
    finally:
        parent.kill()


def test_a_stop_from_another_thread_ends_a_start(make: Callable[..., ManagedServer], tmp_path: Path) -> None:
    sick = tmp_path / "sick"
    sick.touch()  # never healthy: the start would wait for startup_timeout_s
    server = make("--sick", str(sick))
    errors: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as e:
            errors.append(e)

    starter = threading.Thread(target=start)
    starter.start()
    _until(lambda: server.pid is not None and len(group_pids(server.pid)) == 2)
    pid = server.pid
    assert pid is not None
    server.stop()
    starter.join(timeout=20)
    assert not starter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ServerStartError)
    assert "stopped while starting" in str(errors[0])
    assert group_pids(pid) == [] and server.state == "stopped"


def test_a_server_stopped_before_its_start_never_starts(make: Callable[..., ManagedServer]) -> None:
    server = make()
    server.stop()  # e.g. the runtime stopping just before the load got to start()
    with pytest.raises(ServerStartError, match="stopped while starting"):
        server.start()
    assert server.pid is None and not server.ready
