"""All deployments of a catalog: start-up loading, idle unloading and memory-budget eviction.

- Dedicated deployments load every replica at start and are never unloaded before shutdown.
- Serverless deployments load on first request (a cold start, counted in the metrics), are
  unloaded after ``deployment.idle_unload_s`` without requests, and are evicted least
  recently used first when loading another model would exceed ``Settings.memory_budget_gb``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mmserve import heap
from mmserve.cards import ModelCard
from mmserve.catalog.catalog import Catalog
from mmserve.engines.base import EngineContext, VideoEngine
from mmserve.errors import OverloadedError
from mmserve.metrics import Metrics
from mmserve.runtime.collector import RuntimeCollector
from mmserve.runtime.deployment import LOADING, Deployment
from mmserve.settings import Settings

if TYPE_CHECKING:
    from mmserve.runtime.cluster import Cluster

log = logging.getLogger("mmserve.runtime")


class Runtime:
    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        *,
        progress: Callable[[str], None] | None = None,
        metrics: Metrics | None = None,
        context: EngineContext | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.metrics = metrics
        self.budget = int(settings.memory_budget_gb * 1024**3) if settings.memory_budget_gb else None
        self._evict_lock = asyncio.Lock()
        self._janitor: asyncio.Task[None] | None = None
        self._health: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None  # start-up loads (see start)
        self._threads: asyncio.Task[None] | None = None  # torch's threads set, awaited before any load
        self.deployments: dict[str, Deployment] = {}
        self.cluster: Cluster | None = None
        if settings.cluster.address:
            from mmserve.runtime.cluster import Cluster

            self.cluster = Cluster(settings.cluster, base_dir=catalog.base_dir, models_dir=settings.models_dir)
        for card in catalog:
            dep = Deployment(
                card,
                base_dir=catalog.base_dir,
                models_dir=settings.models_dir,
                device=settings.device,
                progress=progress,
                cluster=self.cluster,
                context=context,
                workers=settings.worker_processes,
            )
            dep.before_load = self._make_room
            dep.on_load = self._loaded
            dep.on_unload = self._unloaded
            self.deployments[card.id] = dep
        threads = self.torch_threads()  # a worker process's share of the cores, as a replica's here
        for dep in self.deployments.values():
            dep.worker_threads = threads
        if metrics is not None:
            metrics.registry.register(RuntimeCollector(self))

    def deployment(self, card: ModelCard) -> Deployment:
        return self.deployments[card.id]

    def check_request(self, card: ModelCard, request: object) -> None:
        """Refuse what the card's engine cannot do (a 400 naming the field), before anything is loaded."""
        dep = self.deployments[card.id]
        dep.engine_cls.check_request(dep.options, request)

    def video_defaults(self, card: ModelCard) -> tuple[tuple[int, int], int]:
        """The (width, height) and fps the card's video engine makes when neither request nor card says."""
        engine = self.deployments[card.id].engine_cls
        assert issubclass(engine, VideoEngine)
        return engine.default_size, engine.default_fps

    # -------------------------------------------------------------- lifecycle

    def torch_threads(self) -> int | None:
        """torch's intra-op threads for this catalog: the setting, ``OMP_NUM_THREADS``, or the cores
        shared by its torch replicas.

        None when no card runs a torch engine here (torch is then left alone, and not imported),
        or when replicas run in a Ray cluster (its workers set their own).
        """
        if self.cluster is not None:
            return None
        replicas = sum(d.card.deployment.replicas for d in self.deployments.values() if d.engine_cls.uses_torch)
        if not replicas:
            return None
        return self.settings.torch_threads or _omp_threads() or max(1, len(os.sched_getaffinity(0)) // replicas)

    async def start(self, *, background: bool = False) -> None:
        """Set torch's threads, then load every dedicated model and serverless ``min_replicas``.

        ``background``: return at once and load in a task (the server answers ``/health`` meanwhile;
        :attr:`ready` says when the loads are done). Loads run side by side where that is safe:
        the torch engines one at a time (see ``deployment.LOADING``), the others beside them.
        """
        if self.cluster is not None:
            await self.cluster.connect()  # a wrong address fails the start, not the first request
        self._threads = asyncio.create_task(self._set_threads())
        kept = [dep for dep in self.deployments.values() if dep.min_loaded] if self.settings.load_on_start else []
        for dep in kept:  # "loading" from now: their loads wait for the libraries' imports first
            dep.awaiting_start = True
        self._starting = asyncio.create_task(self._load_at_start(kept))
        self._janitor = asyncio.create_task(self._idle_loop())
        if self.cluster is not None or any(d.runs_in == "worker" for d in self.deployments.values()):
            self._health = asyncio.create_task(self._health_loop())
        if not background:
            await self.wait_started()

    async def wait_started(self) -> None:
        """Until the start-up loads are done (each loaded or failed)."""
        if self._starting is not None:
            await asyncio.shield(self._starting)

    @property
    def started(self) -> bool:
        """The start-up loads are done (each loaded or failed)."""
        return self._starting is not None and self._starting.done()

    @property
    def ready(self) -> bool:
        """Started, and every model kept loaded (dedicated, ``min_replicas``) loaded and serving."""
        return self.started and not self.not_ready()

    def not_ready(self) -> list[str]:
        """The models that must be loaded and are not (yet), e.g. still loading or failed."""
        if not self.settings.load_on_start:
            return []
        return [
            cid
            for cid, dep in self.deployments.items()
            if dep.min_loaded and (dep.loaded_replicas < dep.min_loaded or dep.state != "loaded")
        ]

    async def _set_threads(self) -> None:
        threads = self.torch_threads()
        # torch is imported here only for an engine that computes here: with every torch model in
        # worker processes (deployment.process), the server never loads it (~200 MB, a second of start)
        here = any(d.engine_cls.uses_torch and d.runs_in == "here" for d in self.deployments.values())
        if threads is not None and here:
            from mmserve.engines.common.torch_utils import set_intra_op_threads

            # torch is imported off the loop (seconds), its threads set on it: OpenMP keeps a thread
            # count per thread, and the loop's thread is the one every worker thread is started from
            await asyncio.to_thread(_import_torch)
            set_intra_op_threads(threads)

    async def _load_at_start(self, kept: list[Deployment]) -> None:
        try:
            with heap.loading():  # then the loaded heap is frozen: full collections skip it (see mmserve.heap)
                here = [dep for dep in kept if dep.runs_in == "here"]
                if here:  # their libraries first, frozen as they are: the collection after the loads skips them
                    if self._threads is not None:
                        await asyncio.shield(self._threads)  # torch first, alone (see _set_threads)
                    await asyncio.to_thread(_import_libraries, here)
                    heap.freeze_imports()
                await asyncio.gather(*(self._load_kept(dep) for dep in kept))
        finally:  # stopped before some loads began
            for dep in kept:
                dep.awaiting_start = False

    async def _load_kept(self, dep: Deployment) -> None:
        try:
            await dep.load_all(dep.min_loaded)
        except Exception as e:  # a broken model must not keep the others from serving
            log.error("model '%s' could not be loaded at start: %s", dep.card.id, e)
        finally:
            dep.awaiting_start = False

    async def stop(self) -> None:
        for task in (self._starting, self._threads, self._janitor, self._health):
            if task is not None:
                task.cancel()
        # a vLLM server still starting, a worker still loading: stopped now, not waited for (minutes)
        await asyncio.gather(*(d.abort_loads() for d in self.deployments.values()), return_exceptions=True)
        with heap.released_once():  # one collection of the heap for all the models, not one each
            await asyncio.gather(*(d.unload("shutdown") for d in self.deployments.values()), return_exceptions=True)

    # -------------------------------------------------------------- memory

    def used_bytes(self) -> int:
        return sum((d.memory_bytes or d.expected_bytes()) * d.loaded_replicas for d in self.deployments.values())

    async def _make_room(self, dep: Deployment, need: int) -> None:
        if self._threads is not None:  # no model computes before torch's threads are set
            await asyncio.shield(self._threads)
        if self.budget is None:
            return
        async with self._evict_lock:
            while self.used_bytes() + need > self.budget:
                victims = [
                    d
                    for d in self.deployments.values()
                    if d is not dep and not d.dedicated and d.loaded_replicas and d.active == 0 and d.waiting == 0
                ]
                if not victims:
                    raise OverloadedError(
                        f"Not enough memory to load '{dep.card.id}' within the server's budget "
                        f"({self.settings.memory_budget_gb} GB) while other models are busy. Retry shortly.",
                        headers={"Retry-After": "5"},
                        code="insufficient_memory",
                    )
                victim = min(victims, key=lambda d: d.last_used)
                log.info("evicting '%s' (least recently used) to load '%s'", victim.card.id, dep.card.id)
                await victim.unload("evicted")

    # -------------------------------------------------------------- idle unloading

    async def unload_idle(self) -> list[str]:
        now = time.monotonic()
        unloaded = []
        for dep in self.deployments.values():
            idle = dep.card.deployment.idle_unload_s
            if (
                not dep.dedicated
                and idle is not None
                and dep.loaded_replicas > dep.min_loaded
                and dep.waiting == 0
                and await dep.unload_idle(idle, now)
            ):
                unloaded.append(dep.card.id)
        return unloaded

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cluster.health_check_interval_s)
            for dep in self.deployments.values():
                dep.check_health()  # one task per replica; a slow one holds up no other

    async def _idle_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.idle_check_interval_s)
            try:
                await self.unload_idle()
            except Exception:  # the janitor must never die
                log.exception("idle unloading failed")

    # -------------------------------------------------------------- metrics hooks

    async def refresh_stats(self, timeout: float = 2.0) -> None:
        """Ask every loaded engine with a server of its own for fresh statistics (before a /metrics scrape)."""
        engines = [r.engine for d in self.deployments.values() for r in d.replicas if r.engine is not None]
        if engines:
            await asyncio.wait([asyncio.ensure_future(e.refresh_stats()) for e in engines], timeout=timeout)

    def _loaded(self, dep: Deployment, seconds: float, cold: bool) -> None:
        if self.started:  # a load after start-up (serverless, scale-up): its model joins the frozen heap
            heap.freeze()
        if self.metrics:
            self.metrics.model_loaded(dep.card.id, seconds, cold and not dep.dedicated)

    def _unloaded(self, dep: Deployment, reason: str) -> None:
        if self.metrics:
            self.metrics.model_unloaded(dep.card.id, reason)


def _import_libraries(deployments: list[Deployment]) -> None:
    """Each engine's libraries, one engine after another, and in line with the loads (model
    libraries' lazy imports are not thread-safe, and a request may load a serverless model while
    the server starts); a missing one is left for the engine's load to report."""
    with LOADING:
        for dep in deployments:
            try:
                dep.engine_cls.import_libraries(dep.options)
            except Exception:
                log.debug("importing the libraries of '%s' failed; its load will say why", dep.card.id, exc_info=True)


def _import_torch() -> None:
    with contextlib.suppress(ImportError):  # no torch: the engines that need it say so when they load
        importlib.import_module("torch")


def _omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` when set to a count: the operator's (or a benchmark's) choice, as torch itself honours it."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None
