"""Start-up progress on the terminal (rich): one spinner line per step, ticked when the next begins."""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.status import Status


class StartupProgress:
    def __init__(self, console: Console | None = None, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self._lock = threading.Lock()
        self._current: str | None = None
        self._started = 0.0
        self._status: Status | None = None

    def __call__(self, message: str) -> None:
        with self._lock:
            self._finish_current()
            self._current, self._started = message, time.perf_counter()
            if self.enabled:
                status = self.console.status(f"[bold]{message}[/bold] …")
                status.start()
                self._status = status
            else:
                self.console.print(f"mmserve: {message} …", highlight=False)

    def done(self) -> None:
        with self._lock:
            self._finish_current()

    def _finish_current(self) -> None:
        if self._current is None:
            return
        if self._status is not None:
            self._status.stop()
            self._status = None
        took = time.perf_counter() - self._started
        self.console.print(f"[green]✓[/green] {self._current} ({took:.1f} s)", highlight=False)
        self._current = None
