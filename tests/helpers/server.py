"""A real uvicorn server on loopback, in a background thread, for tests with real clients."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn
from fastapi import FastAPI

from mmserve.api.server import uvicorn_config
from mmserve.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, app: FastAPI, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.port = free_port()
        settings = app.state.mm.settings if hasattr(app.state, "mm") else Settings()
        # the server as `mmserve serve` runs it (its HTTP protocol and limits), on a free port
        config = uvicorn_config(app, settings, host=host, port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 120.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started and self.ready():  # models load after the server listens
                return self
            if not self.thread.is_alive():
                raise RuntimeError("server thread died during start-up")
            time.sleep(0.05)
        raise TimeoutError("server did not start")

    def ready(self) -> bool:
        """mmserve's start-up loads are done (each model loaded or failed), as before they ran in the background."""
        state = getattr(self.app.state, "mm", None)
        return state is None or bool(state.runtime.started)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=10).json()
