"""A deployment: one card's engine, its load state and its admission control.

``acquire()`` admits a request (bounded concurrency plus a bounded queue; beyond it a 503
with Retry-After), loads the engine on first use (serverless) and hands it out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from mmserve.api.errors import EngineUnavailableError, MMServeError, OverloadedError
from mmserve.catalog.schema import ModelCard
from mmserve.catalog.sources import resolve_source
from mmserve.engines.base import Engine
from mmserve.engines.registry import engine_class

log = logging.getLogger("mmserve.runtime")

State = Literal["idle", "loading", "loaded", "failed"]


class Deployment:
    def __init__(
        self,
        card: ModelCard,
        *,
        base_dir: Path,
        models_dir: Path,
        device: str,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.card = card
        self.base_dir = base_dir
        self.models_dir = models_dir
        self.device = card.deployment.device or device
        self.progress = progress
        self.state: State = "idle"
        self.error: str | None = None
        self.engine: Engine | None = None
        self.load_seconds: float | None = None
        self.last_used: float = 0.0
        self.active = 0
        self.waiting = 0
        self._load_lock = asyncio.Lock()
        slots = card.deployment.max_concurrency * card.deployment.replicas
        self._slots = asyncio.Semaphore(slots)

    @property
    def queue_depth(self) -> int:
        return self.waiting

    async def ensure_loaded(self) -> Engine:
        if self.engine is not None:
            return self.engine
        async with self._load_lock:
            if self.engine is not None:
                return self.engine
            self.state = "loading"
            start = time.perf_counter()
            try:
                self.engine = await asyncio.to_thread(self._load_blocking)
            except MMServeError as e:
                self.state, self.error = "failed", e.message
                raise
            except Exception as e:
                self.state, self.error = "failed", f"{type(e).__name__}: {e}"
                log.exception("loading model '%s' failed", self.card.id)
                raise EngineUnavailableError(
                    f"The model '{self.card.id}' failed to load; the server log has the cause."
                ) from e
            self.load_seconds = time.perf_counter() - start
            self.state, self.error = "loaded", None
            log.info("model '%s' loaded in %.2f s", self.card.id, self.load_seconds)
            return self.engine

    def _load_blocking(self) -> Engine:
        source = resolve_source(self.card, base_dir=self.base_dir, models_dir=self.models_dir, progress=self.progress)
        if self.progress:
            self.progress(f"loading model '{self.card.id}'")
        engine: Engine = engine_class(self.card.engine)(self.card, source=source, device=self.device)
        engine.load()
        return engine

    async def unload(self) -> None:
        async with self._load_lock:
            engine, self.engine = self.engine, None
            self.state = "idle"
            if engine is not None:
                await asyncio.to_thread(engine.unload)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Engine]:
        """Admit one request and give it the loaded engine for its whole duration."""
        dep = self.card.deployment
        if self._slots.locked() and self.waiting >= dep.max_queue:
            raise OverloadedError(
                f"The model '{self.card.id}' is at capacity ({self.active} running, {self.waiting} queued). "
                "Retry shortly.",
                headers={"Retry-After": "1"},
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            engine = await self.ensure_loaded()
            yield engine
        finally:
            self.active -= 1
            self.last_used = time.monotonic()
            self._slots.release()
