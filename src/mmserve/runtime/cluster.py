"""Engine replicas on a Ray cluster (``MMSERVE_CLUSTER__ADDRESS``; unset: every replica in this process).

Why Ray actors under mmserve's own deployment manager rather than Ray Serve deployments: the
deployment manager (:mod:`mmserve.runtime.deployment`, :mod:`mmserve.runtime.runtime`) already
decides when a replica loads and unloads (serverless cold starts, idle unload, scale-to-zero,
scale-up on queue depth up to ``max_replicas``), admits or refuses requests (per-replica
concurrency, bounded queues, 503s with Retry-After), evicts models least recently used under a
memory budget and exports its state as metrics. Serve has its own autoscaler, queueing and
HTTP proxy, which would duplicate these with different semantics (it cannot evict model A to
load model B within a budget), and its handles add a router hop to every call. With actors,
a replica is the same object in both modes, only its engine lives elsewhere: Ray places it
with the card's resources, streams its output (actor generators), cancels it, and tells us
when its node died, and the manager does the rest exactly as in-process.

A replica is one actor (:class:`mmserve.runtime.actor.EngineActor`), asking Ray for the
card's ``num_cpus``, ``num_gpus``, ``memory_gb`` and custom ``resources`` (a node label such as
``{"gpu_a100": 1}``); a deployment's replicas are spread over nodes (``placement: spread``) or
packed (``pack``). Actors belong to the gateway that made them (they end with it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmserve.cards import ModelCard
from mmserve.errors import EngineUnavailableError, MMServeError
from mmserve.runtime.remote import REMOTE_CLASSES, ReplicaHandle
from mmserve.settings import ClusterSettings

if TYPE_CHECKING:
    from mmserve.engines.base import Engine

log = logging.getLogger("mmserve.cluster")
SPAWN_ATTEMPTS = 4  # a replica that dies while loading (placed on a node dying unnoticed) is placed again
SPAWN_RETRY_S = 1.0


class Cluster:
    def __init__(self, settings: ClusterSettings, *, base_dir: Path, models_dir: Path) -> None:
        self.settings = settings
        self.base_dir = base_dir
        self.models_dir = models_dir
        self._connected = False
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        async with self._lock:
            if not self._connected:
                await asyncio.to_thread(self._connect_blocking)
                self._connected = True

    def _connect_blocking(self) -> None:
        try:
            import ray
        except ImportError:  # pragma: no cover - the extra is in the test set-up
            raise MMServeError(
                "MMSERVE_CLUSTER__ADDRESS is set but Ray is missing: pip install 'mmserve[cluster]'"
            ) from None
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(
                address=self.settings.address,
                namespace=self.settings.namespace,
                logging_level=logging.WARNING,
                log_to_driver=self.settings.log_to_driver,
            )
        log.info("connected to the Ray cluster at %s", self.settings.address)

    def actor_options(self, card: ModelCard, device: str = "auto") -> dict[str, Any]:
        from mmserve.engines.registry import engine_class

        dep = card.deployment
        engine = engine_class(card.engine)  # unset max_concurrency: the engine's (a batching engine's batch)
        concurrency = dep.concurrency(engine.default_concurrency(engine.Options.model_validate(card.options), device))
        options: dict[str, Any] = {
            "num_cpus": dep.num_cpus if dep.num_cpus is not None else 1,
            "num_gpus": dep.num_gpus or 0,
            "max_concurrency": max(concurrency, 1) + 4,  # + health checks and info calls
            "max_restarts": 0,  # a dead replica is replaced by the deployment manager (on a live node)
        }
        if dep.resources:
            options["resources"] = dict(dep.resources)
        if dep.memory_gb:
            options["memory"] = int(dep.memory_gb * 1024**3)
        if dep.placement == "spread":
            options["scheduling_strategy"] = "SPREAD"
        return options

    async def start_replica(self, card: ModelCard, device: str) -> Engine:
        """An actor with the card's engine loaded, wrapped in the task's remote engine."""
        await self.connect()

        async def spawn() -> tuple[Any, dict[str, Any]]:
            return await self._spawn(card, device)

        actor, info = await spawn()
        handle = ReplicaHandle(actor, info, spawn)
        return REMOTE_CLASSES[card.task](card, handle)

    async def _spawn(self, card: ModelCard, device: str) -> tuple[Any, dict[str, Any]]:
        """A new actor with the card's engine loaded; tried again when it dies while loading.

        After a node dies, Ray may still place an actor on it until its health checks declare it
        dead (seconds): that actor dies at once, and the next one lands on a live node.
        """
        import ray.exceptions as rex

        deadline = asyncio.get_running_loop().time() + self.settings.start_timeout_s
        for attempt in range(1, SPAWN_ATTEMPTS + 1):
            try:
                return await self._spawn_once(card, device, deadline)
            except rex.RayActorError as e:
                if attempt == SPAWN_ATTEMPTS or asyncio.get_running_loop().time() >= deadline:
                    raise EngineUnavailableError(f"A replica of '{card.id}' failed to load on the cluster.") from e
                log.warning("a replica of '%s' died while loading (attempt %d); placing another", card.id, attempt)
                await asyncio.sleep(SPAWN_RETRY_S * attempt)
        raise AssertionError("unreachable")

    async def _spawn_once(self, card: ModelCard, device: str, deadline: float) -> tuple[Any, dict[str, Any]]:
        import ray

        from mmserve.runtime.actor import EngineActor

        remote_cls: Any = ray.remote(EngineActor).options(**self.actor_options(card))
        actor: Any = remote_cls.remote(card.model_dump(mode="json"), str(self.base_dir), str(self.models_dir), device)
        try:
            info = await asyncio.wait_for(actor.info.remote(), max(1.0, deadline - asyncio.get_running_loop().time()))
        except TimeoutError:
            ray.kill(actor)
            raise EngineUnavailableError(
                f"No cluster node could start a replica of '{card.id}' within {self.settings.start_timeout_s:g} s "
                f"(resources asked: {self.actor_options(card)}).",
                code="no_capacity",
            ) from None
        log.info("replica of '%s' started on node %s", card.id, str(info["node_id"])[:12])
        return actor, info
