"""The server before its app exists: probes answer at once while the app is imported and started.

Importing the app (FastAPI, pydantic models, SQLAlchemy, every API surface: ~0.8 s of CPU on a
2-core machine) and starting it (the database migrated, interrupted jobs recovered) used to come
before the server listened, so ``GET /health`` first answered ~1.3 s after ``mmserve serve``.
:class:`Booting` is the ASGI app uvicorn serves from its first moment instead:

- it starts at once (its lifespan start-up completes immediately), so the socket listens after
  only uvicorn and the catalog are loaded;
- meanwhile it builds the real app in a thread and runs the real app's lifespan (start-up now,
  shutdown when the server stops) with asgi-lifespan's :class:`LifespanManager`;
- until the real app has started, ``GET /health`` answers 200 (the process lives:
  Kubernetes' livenessProbe) with ``status: starting``, ``GET /ready`` answers 503 ``starting``
  with Retry-After, and every other request waits for the app and is then served by it, as a
  request for a model that is still loading waits for the load;
- if the app cannot be built or started (a database that cannot be migrated, say), the error is
  logged, waiting requests get a 503 envelope and ``on_failure`` stops the server.

Afterwards every request goes straight to the real app (one attribute check per request).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from asgi_lifespan import LifespanManager

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("mmserve")


class Booting:
    """Serves ``build()``'s app once built and started; answers the probes before (see the module)."""

    def __init__(
        self,
        build: Callable[[], ASGIApp],
        *,
        models: dict[str, str],
        auth: bool,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self._build = build
        self._models = models  # each card's state until the app reports its own: "loading" or "idle"
        self._auth = auth
        self._on_failure = on_failure
        self.app: ASGIApp | None = None  # the real app, once started
        self.failed = False
        self._started = asyncio.Event()  # the app started, or failed to
        self._stop = asyncio.Event()  # the server stops: the app's lifespan shuts down
        self._holder: asyncio.Task[None] | None = None  # runs the app's lifespan from start to shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"] in ("/health", "/ready"):
            await self._probe(scope["path"], send)
        else:
            await self._started.wait()
            if self.app is not None:
                await self.app(scope, receive, send)
            elif scope["type"] == "http":
                body = {"message": "The server failed to start: see its log.", "type": "server_error"}
                await _json(send, 503, {"error": {**body, "param": None, "code": "unavailable"}})

    async def wait_started(self) -> None:
        """Until the app has started (or failed to)."""
        await self._started.wait()

    async def _probe(self, path: str, send: Send) -> None:
        if self.failed:
            await _json(send, 503, {"status": "failed", "models": self._models})
        elif path == "/health":
            await _json(send, 200, {"status": "starting", "auth": self._auth, "models": self._models})
        else:
            waiting = [cid for cid, state in self._models.items() if state == "loading"]
            body = {"status": "starting", "waiting_for": waiting, "models": self._models}
            await _json(send, 503, body, retry_after=True)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._holder = asyncio.create_task(self._run_app())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._stop.set()
                if self._holder is not None:
                    await self._holder  # the app's own shutdown (flushes usage, requeues running jobs)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _run_app(self) -> None:
        try:
            # a thread: the import and the app's construction would otherwise block the loop for ~1 s
            app = await asyncio.to_thread(self._build)
            # no time limits: a migration or a job recovery takes what it takes, as under uvicorn
            async with LifespanManager(app, startup_timeout=None, shutdown_timeout=None):
                self.app = app
                self._started.set()
                await self._stop.wait()
        except Exception:
            log.exception("the server failed to start")
            self.failed = True
            self._started.set()
            if self._on_failure is not None:
                self._on_failure()


async def _json(send: Send, status: int, body: dict[str, Any], *, retry_after: bool = False) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
