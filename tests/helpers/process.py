"""`mmserve serve` as a real subprocess (for restart and crash tests), on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.server import free_port


class ServerProcess:
    def __init__(self, data_dir: Path, config: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.config = config
        self.env = {**os.environ, "MMSERVE_PROGRESS": "false", **(env or {})}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"
        self.launch_options: dict[str, Any] = {}  # more Popen arguments (start_new_session...)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_for: list[str], timeout: float = 240.0) -> ServerProcess:
        return self.launch().wait_ready(wait_for, timeout)

    def launch(self) -> ServerProcess:
        """Start the process without waiting (several servers then start side by side)."""
        self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "mmserve.cli", "serve", "--port", str(self.port)]
        cmd += ["--data-dir", str(self.data_dir), "--config", str(self.config)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, **self.launch_options)
        return self

    def wait_ready(self, wait_for: list[str], timeout: float = 240.0) -> ServerProcess:
        """Wait until the start-up loads are done (/ready no longer says "starting": every model loaded,
        or one failed) and every model of ``wait_for`` is loaded."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mmserve exited during start-up:\n{self.log.read_text()[-3000:]}")
            try:
                ready = httpx.get(f"{self.url}/ready", timeout=2).json()
                if ready["status"] != "starting" and all(ready["models"].get(m) == "loaded" for m in wait_for):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError("mmserve did not become healthy")

    def kill9(self) -> None:
        """SIGKILL: no shutdown hooks run, exactly like a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


# Fields of /proc/<pid>/stat after the command name: state, parent, process group, ...
STATE, PARENT, GROUP = 0, 1, 2


def stat_fields(pid: int) -> list[str] | None:
    """The process's /proc/<pid>/stat fields after its command name (None: it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def processes_where(field: int, value: int) -> list[int]:
    """The processes whose stat ``field`` (PARENT, GROUP) is ``value``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None and int(fields[field]) == value:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """The process exists and is no zombie."""
    fields = stat_fields(pid)
    return fields is not None and fields[STATE] != "Z"
