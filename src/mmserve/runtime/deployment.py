"""A deployment: one card's replicas (engine instances), their load state and admission control.

``acquire()`` admits a request (``max_concurrency`` per replica, by default the engine's: a
batching engine admits as many as it batches; plus a bounded queue; beyond
it a 503 with Retry-After), picks the least busy loaded replica, loads one when none is
(serverless cold start) or when all are busy and one is still unloaded (scale-up), and
hands out its engine for the whole request. Dedicated deployments load every replica at
start and are never evicted; serverless ones are unloaded by the runtime when idle or when
memory is needed (least recently used first).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mmserve.cards import ModelCard
from mmserve.catalog.sources import resolve_source
from mmserve.engines.base import Engine, EngineContext, EngineOptions
from mmserve.engines.registry import engine_class
from mmserve.errors import EngineUnavailableError, MMServeError, OverloadedError
from mmserve.runtime.replica import Replica
from mmserve.timing import in_model

if TYPE_CHECKING:
    from mmserve.runtime.cluster import Cluster

log = logging.getLogger("mmserve.runtime")

State = Literal["idle", "loading", "loaded", "restarting", "failed"]
# Model libraries resolve their lazy imports without a lock (transformers' _LazyModule): two
# models built or loaded at once in two threads fail with "cannot import name ... from
# 'transformers'". So the torch engines' builds and loads run one at a time (they compete for the
# same cores anyway); engines without model libraries (espeak-ng, PocketSphinx) load beside them.
LOADING = threading.Lock()
# Called before a replica loads, with the bytes it is expected to need (the runtime makes room).
BeforeLoad = Callable[["Deployment", int], Awaitable[None]]
# Called after a load (seconds, cold) and after an unload (reason).
LoadHook = Callable[["Deployment", float, bool], None]
UnloadHook = Callable[["Deployment", str], None]


class Deployment:
    def __init__(
        self,
        card: ModelCard,
        *,
        base_dir: Path,
        models_dir: Path,
        device: str,
        progress: Callable[[str], None] | None = None,
        cluster: Cluster | None = None,
        context: EngineContext | None = None,
        workers: bool = False,
    ) -> None:
        self.card = card
        self.cluster = cluster  # None: engines load in this process
        self.context = context or EngineContext()
        self.base_dir = base_dir
        self.models_dir = models_dir
        self.device = card.deployment.device or device
        self.progress = progress
        self.replicas = [Replica(i) for i in range(card.deployment.replicas)]
        self.error: str | None = None
        self.awaiting_start = False  # a start-up load will come (the runtime imports the libraries first)
        self.load_seconds: float | None = None
        self.memory_bytes: int | None = None  # measured per replica after the first load
        self.last_used: float = time.monotonic()
        self.active = 0
        self.waiting = 0
        self.source: Path | None = None
        self.max_concurrency = card.deployment.concurrency(
            self.engine_cls.default_concurrency(self.options, self.device)
        )
        slots = self.max_concurrency * card.deployment.replicas
        self._slots = asyncio.Semaphore(slots)
        self.before_load: BeforeLoad | None = None
        self.on_load: LoadHook | None = None
        self.on_unload: UnloadHook | None = None
        self.worker_threads: int | None = None  # torch's threads in a worker process (set by the runtime)
        self.workers = workers  # replicas in worker processes unless the card says (MMSERVE_WORKER_PROCESSES)

    # -------------------------------------------------------------- state

    @functools.cached_property
    def engine_cls(self) -> type[Engine]:
        """The card's engine class (imported on first use: only the extras in use are needed)."""
        return engine_class(self.card.engine)

    @functools.cached_property
    def options(self) -> EngineOptions:
        return self.engine_cls.Options.model_validate(self.card.options)

    @property
    def dedicated(self) -> bool:
        return self.card.deployment.mode == "dedicated"

    @property
    def min_loaded(self) -> int:
        """Replicas kept loaded: all of a dedicated deployment's, ``min_replicas`` of a serverless one's."""
        return len(self.replicas) if self.dedicated else self.card.deployment.min_replicas

    @property
    def replica_nodes(self) -> list[str]:
        """Where each loaded replica runs: a Ray node id on a cluster, "local" in this process."""
        return [str(getattr(r.engine, "node_id", "local")) for r in self.replicas if r.engine is not None]

    @property
    def replica_restarts(self) -> int:
        """Replicas started again after their actor or node died (on a cluster)."""
        return sum(getattr(getattr(r.engine, "handle", None), "restarts", 0) for r in self.replicas)

    @property
    def loaded_replicas(self) -> int:
        return sum(1 for r in self.replicas if r.engine is not None)

    @property
    def state(self) -> State:
        if self.awaiting_start or any(r.loading or r.loader is not None for r in self.replicas):
            return "loading"
        engines = [r.engine for r in self.replicas if r.engine is not None]
        if engines:
            # every loaded replica's server is down (an engine with a process of its own restarts it)
            return "loaded" if any(e.available for e in engines) else "restarting"
        return "failed" if self.error else "idle"

    @property
    def queue_depth(self) -> int:
        return self.waiting

    @property
    def saturated(self) -> bool:
        """No free slot and a full queue: a new request would be refused."""
        return self._slots.locked() and self.waiting >= self.card.deployment.max_queue

    @property
    def engine(self) -> Engine | None:
        """The first loaded replica's engine (for introspection)."""
        return next((r.engine for r in self.replicas if r.engine is not None), None)

    # -------------------------------------------------------------- loading

    async def ensure_loaded(self, replica: Replica | None = None) -> Engine:
        """The replica's engine, loading it first if needed.

        The load runs as its own task, shared by every request that waits for it: a request
        that is cancelled meanwhile (its client left) stops waiting, but the load goes on, so
        that the next request finds the model loaded instead of starting over.
        """
        replica = replica or self.replicas[0]
        if replica.engine is not None:
            return replica.engine
        return await asyncio.shield(self._loader(replica))

    def _loader(self, replica: Replica) -> asyncio.Task[Engine]:
        """The task loading ``replica``, started if there is none (the deployment reads "loading" from now)."""
        if replica.loader is None:
            replica.loader = asyncio.create_task(self._load(replica))
            replica.loader.add_done_callback(_retrieved)
        return replica.loader

    async def _load(self, replica: Replica) -> Engine:
        try:
            return await self._load_locked(replica)
        finally:
            replica.loader = None

    async def _load_locked(self, replica: Replica) -> Engine:
        async with replica.lock:
            if replica.engine is not None:
                return replica.engine
            cold = self.loaded_replicas == 0
            replica.loading = True
            start = time.perf_counter()
            try:
                where = self.runs_in
                if where == "here" and self.source is None and self.card.source is not None:
                    self.source = await asyncio.to_thread(self._resolve_source)  # elsewhere: by the replica
                elif where == "worker" and self.card.source and not self.card.source.startswith("demo:"):
                    # missing weights fail here, not in a worker started for nothing (a second of CPU
                    # each time); a demo model is built by the worker, which has the libraries loaded
                    await asyncio.to_thread(self._resolve_source)
                if self.before_load is not None:
                    await self.before_load(self, self.expected_bytes())
                if where == "cluster":
                    assert self.cluster is not None
                    replica.engine = await self.cluster.start_replica(self.card, self.device, replica.index)
                elif where == "worker":  # (no progress line: the spinner shows one load at a time)
                    from mmserve.runtime.process import start_worker_replica

                    dirs = {"base_dir": self.base_dir, "models_dir": self.models_dir}
                    replica.engine = await start_worker_replica(
                        self.card, self.device, threads=self.worker_threads, **dirs
                    )
                else:
                    replica.engine = await asyncio.to_thread(self._load_blocking, replica)
            except MMServeError as e:
                self.error = e.message
                raise
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}"
                log.exception("loading model '%s' failed", self.card.id)
                raise EngineUnavailableError(
                    f"The model '{self.card.id}' failed to load; the server log has the cause."
                ) from e
            finally:
                replica.loading = False
            self.load_seconds = time.perf_counter() - start
            self.error = None
            self.last_used = time.monotonic()
            measured = replica.engine.memory_bytes()
            if measured:
                self.memory_bytes = measured
            log.info("model '%s' replica %d loaded in %.2f s", self.card.id, replica.index, self.load_seconds)
            if self.on_load is not None:
                self.on_load(self, self.load_seconds, cold)
            return replica.engine

    @property
    def runs_in(self) -> Literal["here", "worker", "cluster"]:
        """Where a replica's engine runs: in this process, in a worker process of its own
        (``deployment.process``, else ``MMSERVE_WORKER_PROCESSES``), or in a Ray actor (a cluster).
        Engines that hold no weights (upstream providers) or run a server of their own (vLLM)
        always run here."""
        if self.engine_cls.in_gateway:
            return "here"
        if self.cluster is not None:
            return "cluster"
        process = self.card.deployment.process
        if (self.workers if process is None else process) and self.engine_cls.loads_in_process:
            return "worker"
        return "here"

    def _resolve_source(self) -> Path | None:
        with LOADING:
            return resolve_source(self.card, base_dir=self.base_dir, models_dir=self.models_dir, progress=self.progress)

    def _load_blocking(self, replica: Replica) -> Engine:
        serial = self.engine_cls.loads_in_process and self.engine_cls.uses_torch
        with LOADING if serial else contextlib.nullcontext():
            if self.progress and serial:  # one spinner line at a time; the others load in a blink (logged)
                self.progress(f"loading model '{self.card.id}'")
            engine: Engine = self.engine_cls(self.card, source=self.source, device=self.device)
            engine.context = self.context
            replica.pending = engine
            try:
                engine.load()
            finally:
                replica.pending = None
            return engine

    async def abort_loads(self) -> None:
        """The server is stopping: end the loads in progress that can end midway, instead of waiting for them.

        An engine loading in a thread here is asked to (:meth:`Engine.abort_load`: a vLLM server
        still starting is stopped); a worker process still loading is killed (its load task is
        cancelled). Other loads (weights read in a thread, a Ray actor starting) run to their end,
        and are then unloaded as usual.
        """
        for replica in self.replicas:
            engine = replica.pending
            if engine is not None:
                await asyncio.to_thread(engine.abort_load)
            elif replica.loader is not None and self.runs_in == "worker":
                replica.loader.cancel()

    async def load_all(self, count: int | None = None) -> None:
        """Load the first ``count`` replicas (all by default)."""
        for replica in self.replicas[: len(self.replicas) if count is None else count]:
            await self.ensure_loaded(replica)

    def load_in_background(self) -> asyncio.Task[None]:
        """Load every replica, one after the other, in a task; the state is "loading" when this returns."""
        first = next((r for r in self.replicas if r.engine is None), None)
        if first is not None:
            self._loader(first)  # started now, so that the state says so at once; load_all waits for it
        return asyncio.create_task(self.load_all())

    async def unload_idle(self, idle_s: float, now: float) -> bool:
        """Unload replicas unused for ``idle_s`` down to :attr:`min_loaded` (scale down); whether any was."""
        unloaded = False
        for replica in reversed(self.replicas):
            if self.loaded_replicas <= self.min_loaded:
                break
            if replica.engine is None or replica.active or now - replica.last_used < idle_s:
                continue
            unloaded = await self._unload_replica(replica, "idle") or unloaded
        if unloaded:
            log.info("model '%s' scaled down to %d replica(s) (idle)", self.card.id, self.loaded_replicas)
            if self.on_unload is not None:
                self.on_unload(self, "idle")
        return unloaded

    def check_health(self) -> None:
        """Ping every remote replica (see :meth:`Replica.check_health`)."""
        for replica in self.replicas:
            replica.check_health(self.card.id)

    async def _unload_replica(self, replica: Replica, reason: str) -> bool:
        async with replica.lock:
            if replica.active and reason != "shutdown":
                return False
            engine, replica.engine = replica.engine, None
            if engine is None:
                return False
            if replica.health is not None:
                replica.health.cancel()  # a replacement it was starting would be held by nobody (its lease ends)
            await engine.aclose()
            await asyncio.to_thread(engine.unload)
            del engine
            return True

    def expected_bytes(self) -> int:
        """What one more replica will need: the card's hint, the last measurement, or the weights' size."""
        if self.card.deployment.memory_gb:
            return int(self.card.deployment.memory_gb * 1024**3)
        if self.memory_bytes:
            return self.memory_bytes
        if self.source is not None and self.source.is_dir():
            return sum(p.stat().st_size for p in self.source.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt"))
        return 0

    async def unload(self, reason: str = "shutdown") -> bool:
        """Unload every replica that is not serving (at shutdown: every one); returns whether any was.

        Callers check that the deployment is idle first, but unloading awaits: a request that
        arrives meanwhile takes a replica still loaded, which must then be left alone.
        """
        unloaded = False
        for replica in self.replicas:
            unloaded = await self._unload_replica(replica, reason) or unloaded
        if unloaded:
            log.info("model '%s' unloaded (%s)", self.card.id, reason)
            if self.on_unload is not None:
                self.on_unload(self, reason)
        return unloaded

    # -------------------------------------------------------------- admission

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Engine]:
        """Admit one request and give it a loaded engine for its whole duration."""
        if self.saturated:
            raise OverloadedError(
                f"The model '{self.card.id}' is at capacity ({self.active} running, {self.waiting} queued). "
                "Retry shortly.",
                headers={"Retry-After": "1"},
            )
        with in_model():  # queued, loading or running: not the gateway's own time (x-mmserve-overhead-ms)
            async with self._admitted() as engine:
                yield engine

    @asynccontextmanager
    async def _admitted(self) -> AsyncIterator[Engine]:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        replica = self._pick()
        replica.active += 1
        try:
            yield await self.ensure_loaded(replica)
        finally:
            replica.active -= 1
            self.active -= 1
            self.last_used = replica.last_used = time.monotonic()
            self._slots.release()

    def _pick(self) -> Replica:
        loaded = [r for r in self.replicas if r.engine is not None]
        available = [r for r in loaded if r.engine is not None and r.engine.available]
        loaded = available or loaded  # a replica whose server restarts answers 503 at once: others first
        idle_capacity = [r for r in loaded if r.active < self.max_concurrency]
        if idle_capacity:
            return min(idle_capacity, key=lambda r: r.active)
        unloaded = [r for r in self.replicas if r.engine is None]
        if unloaded:  # scale up: nothing loaded yet, or every loaded replica is busy
            return min(unloaded, key=lambda r: r.active)
        return min(loaded, key=lambda r: r.active)


def _retrieved(task: asyncio.Task[Engine]) -> None:
    """A load nobody waits for any more still has its failure read (it is logged and kept in ``error``)."""
    if not task.cancelled():
        task.exception()
