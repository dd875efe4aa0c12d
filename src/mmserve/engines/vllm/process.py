"""One managed vLLM OpenAI server: started, health-checked, restarted with backoff, stopped with its processes.

A supervisor thread owns the server for its whole life. It starts the process (in a new
session: the API server, its EngineCore and Worker share one process group), waits for
``/health`` (then, where vLLM bound its Worker to some cores, binds the EngineCore to them:
:mod:`.cpu_affinity`), then watches it: the process exiting, or ``/health`` failing three times
in a row, means the server is gone. vLLM's API server exits with status 0 when its engine dies, so the
exit status is no signal: any exit that mmserve did not ask for is a failure. The supervisor
then kills what is left of the group (a killed API server orphans its EngineCore and Worker,
~2 GB on a CPU), waits (1 s, doubling up to a minute; back to 1 s after a minute of health)
and starts it again. While it is down, :attr:`ManagedServer.ready` is false.

The first start is different: :meth:`ManagedServer.start` waits for it and raises if it fails,
so that a card whose server cannot start fails to load (the runtime reports it) instead of
retrying forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from mmserve.engines.vllm.cpu_affinity import pin_engine_core

log = logging.getLogger("mmserve.engines.vllm")

State = Literal["starting", "ready", "restarting", "stopped", "failed"]
UNHEALTHY_CHECKS = 3  # consecutive failed /health checks before a running server is restarted
STABLE_S = 60.0  # a server healthy for this long resets the restart backoff


class ServerStartError(RuntimeError):
    """The server did not become healthy; the message has the end of its output."""


@dataclass
class Timing:
    startup_timeout_s: float = 900.0
    health_interval_s: float = 5.0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    term_grace_s: float = 10.0  # SIGTERM -> SIGKILL; vLLM's API server stops its engine processes in ~3 s


class ManagedServer:
    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        socket: Path,
        log_path: Path,
        timing: Timing,
        *,
        pin_engine_core: bool = False,
    ) -> None:
        self.name = name
        self.pin_engine_core = pin_engine_core  # once healthy: see cpu_affinity
        self.argv = argv
        self.env = env
        self.socket = socket
        self.log_path = log_path
        self.timing = timing
        self.state: State = "stopped"
        self.restarts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._first = threading.Event()
        self._first_error: str | None = None
        self._came_up = False  # the first start reached a healthy server
        self._thread: threading.Thread | None = None
        self._health = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://vllm", timeout=10.0, trust_env=False
        )

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Start the server and its supervisor; block until it is healthy (or raise ServerStartError)."""
        self.state = "starting"
        self._thread = threading.Thread(target=self._supervise, name=f"vllm-{self.name}", daemon=True)
        self._thread.start()
        self._first.wait()
        if not self._came_up:  # failed, or stopped (:meth:`stop` from another thread) before it was up
            self._thread.join()
            raise ServerStartError(self._first_error or "was stopped while starting")

    def stop(self) -> None:
        """Stop the server and every process it started; idempotent.

        From another thread while :meth:`start` waits, it ends that start: :meth:`start` raises.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._kill()
        self._health.close()
        self.state = "stopped"

    def output_tail(self, lines: int = 40) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
                tail = deque(f.read().decode(errors="replace").splitlines(), maxlen=lines)
        except OSError:
            return ""
        return "\n".join(tail)

    # ------------------------------------------------------------------ supervisor thread

    def _supervise(self) -> None:
        backoff = self.timing.backoff_s
        first = True
        try:
            while not self._stop.is_set():
                self._spawn()
                problem = self._wait_healthy()
                if first:
                    first = False
                    if problem is not None:
                        self._first_error = f"{problem}\n--- last lines of its output ---\n{self.output_tail()}"
                        self._kill()
                        self.state = "failed"
                        return
                    self._pin()
                    self.state = "ready"
                    self._came_up = True
                    self._first.set()
                    up = time.monotonic()
                    problem = self._watch()
                elif problem is None:
                    log.info("vLLM server of '%s' is back (restart %d)", self.name, self.restarts)
                    self._pin()
                    self.state = "ready"
                    up = time.monotonic()
                    problem = self._watch()
                else:
                    up = time.monotonic()
                if self._stop.is_set():
                    return
                self.state = "restarting"
                log.error(
                    "vLLM server of '%s' %s; restarting it in %.0f s. Last lines of its output:\n%s",
                    self.name,
                    problem,
                    backoff,
                    self.output_tail(),
                )
                self._kill()
                backoff = self.timing.backoff_s if time.monotonic() - up >= STABLE_S else backoff
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.timing.backoff_max_s)
                self.restarts += 1
        finally:
            self._first.set()  # never leave start() waiting

    def _pin(self) -> None:
        proc = self.proc
        if self.pin_engine_core and proc is not None:
            cores = pin_engine_core(group_pids(proc.pid))
            if cores is not None:
                log.info("vLLM server of '%s': EngineCore bound to its Worker's CPUs %s", self.name, sorted(cores))

    def _spawn(self) -> None:
        self.socket.unlink(missing_ok=True)  # a stale socket makes the bind fail (EADDRINUSE)
        launcher = [sys.executable, "-m", "mmserve.engines.vllm.launch", str(os.getpid())]
        with self.log_path.open("ab") as out:
            out.write(f"\n=== mmserve: starting {' '.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                launcher + self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: stopped as one
                close_fds=True,
            )
        log.info("vLLM server of '%s' starting (pid %d), output in %s", self.name, self.proc.pid, self.log_path)

    def _wait_healthy(self) -> str | None:
        """None once /health answers 200; else what went wrong."""
        assert self.proc is not None
        deadline = time.monotonic() + self.timing.startup_timeout_s
        while not self._stop.is_set():
            code = self.proc.poll()
            if code is not None:
                return f"exited with status {code} while starting"
            if self._healthy() is True:
                return None
            if time.monotonic() > deadline:
                return f"was not healthy after {self.timing.startup_timeout_s:.0f} s"
            self._stop.wait(0.5)
        return "was stopped while starting"

    def _watch(self) -> str:
        """Block while the server is up; return why it no longer is (or 'stopped' when asked to stop)."""
        assert self.proc is not None
        failures = 0
        while not self._stop.is_set():
            try:
                code = self.proc.wait(timeout=self.timing.health_interval_s)
            except subprocess.TimeoutExpired:
                pass
            else:
                return f"exited (status {code})"
            healthy = self._healthy()
            if healthy is False:
                failures += 1
                if failures >= UNHEALTHY_CHECKS:
                    return f"failed {failures} health checks in a row"
            elif healthy is True:
                failures = 0
        return "stopped"

    def _healthy(self) -> bool | None:
        """True: 200; False: an error status or no listener; None: no answer in time (busy is not dead)."""
        try:
            return self._health.get("/health").status_code == 200
        except httpx.TimeoutException:
            return None
        except httpx.HTTPError:
            return False

    def _kill(self) -> None:
        """Stop the API server (SIGTERM: it stops its engine processes), then SIGKILL whatever is left of the group."""
        proc = self.proc
        if proc is None:
            return
        grace = self.timing.term_grace_s
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
            _wait_group_gone(proc.pid, grace)  # its engine processes are shutting down
        # An API server that died by itself leaves its engine processes idle: no grace for them.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait()
        _wait_group_gone(proc.pid, 5.0)
        self.socket.unlink(missing_ok=True)


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group (zombies excluded), from Linux's /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _wait_group_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while group_pids(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def group_rss_bytes(pgid: int) -> int | None:
    """Resident memory of every process in the group."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
    return total or None
