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
packed (``pack``).

Gateways share replicas. A replica is a detached actor named by its card (the card, its device,
what its source means and the mmserve version, hashed: :meth:`Cluster.actor_name`) and its
index in the deployment, in the cluster's namespace: the first gateway that needs replica *i*
starts it, the others attach to the same actor (Ray's ``get_if_exists`` makes the two one
atomic step), so N gateways in front of one GPU load its model once. Each gateway's
health-check pings renew its lease on the replicas it uses, and an unload (idle, eviction,
shutdown) gives the lease back; the actor ends itself when nobody holds it and no call runs
(:mod:`mmserve.runtime.lease`), and a gateway that died without giving it back stops counting
once its lease (``lease_s``) ran out. Gateways with another card for the same id, another
namespace or another mmserve version never share.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmserve import __version__
from mmserve.cards import ModelCard
from mmserve.errors import EngineUnavailableError, MMServeError
from mmserve.runtime.ray_handle import CONTROL_GROUP, CONTROL_SLOTS, ReplicaHandle
from mmserve.runtime.remote import PING_TIMEOUT_S, REMOTE_CLASSES
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
        self.gateway = uuid.uuid4().hex  # this gateway, in the leases of the replicas it holds

    @property
    def lease_s(self) -> float:
        """How long a replica counts this gateway as holding it after its last ping: three missed
        health checks (and the last one's timeout), so a busy gateway never loses its replicas."""
        return 3 * self.settings.health_check_interval_s + PING_TIMEOUT_S

    def actor_name(self, card: ModelCard, device: str, index: int) -> str:
        """Replica ``index`` of ``card``: the same name on every gateway of this mmserve version
        with the same card and device whose source means the same weights (so they share it),
        another name otherwise.

        A relative source means the catalog's directory on each gateway, so that directory is
        part of the name; a demo model (built the same, seeded, wherever), an absolute path
        and a Hugging Face id are not.
        """
        source = card.source or ""
        if source and not source.startswith("demo:") and not Path(source).expanduser().is_absolute():
            source = str(self.base_dir / source)
        what = [card.model_dump(mode="json"), device, source, __version__]  # an upgrade: new replicas
        digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
        return f"{card.id}/{digest}/{index}"

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
            "max_concurrency": max(concurrency, 1) + 4,  # pings, attach and release have a group of their own
            "max_restarts": 0,  # a dead replica is replaced by the deployment manager (on a live node)
        }
        if dep.resources:
            options["resources"] = dict(dep.resources)
        if dep.memory_gb:
            options["memory"] = int(dep.memory_gb * 1024**3)
        if dep.placement == "spread":
            options["scheduling_strategy"] = "SPREAD"
        return options

    async def start_replica(self, card: ModelCard, device: str, index: int = 0) -> Engine:
        """Replica ``index`` of the card (started, or attached to when another gateway did), wrapped
        in the task's remote engine."""
        await self.connect()

        async def spawn() -> tuple[Any, dict[str, Any]]:
            return await self._spawn(card, device, index)

        actor, info = await spawn()
        handle = ReplicaHandle(actor, info, spawn, gateway=self.gateway, lease_s=self.lease_s)
        return REMOTE_CLASSES[card.task](card, handle)

    async def _spawn(self, card: ModelCard, device: str, index: int) -> tuple[Any, dict[str, Any]]:
        """The replica's actor with the card's engine loaded, this gateway attached; tried again when
        it dies while loading (or ends just as this gateway attaches: nobody held it).

        After a node dies, Ray may still place an actor on it until its health checks declare it
        dead (seconds): that actor dies at once, and the next one lands on a live node.
        """
        import ray.exceptions as rex

        deadline = asyncio.get_running_loop().time() + self.settings.start_timeout_s
        for attempt in range(1, SPAWN_ATTEMPTS + 1):
            try:
                return await self._spawn_once(card, device, index, deadline)
            except rex.RayActorError as e:
                if attempt == SPAWN_ATTEMPTS or asyncio.get_running_loop().time() >= deadline:
                    raise EngineUnavailableError(f"A replica of '{card.id}' failed to load on the cluster.") from e
                log.warning(
                    "a replica of '%s' died while loading (attempt %d: %s); placing another", card.id, attempt, e
                )
                await asyncio.sleep(SPAWN_RETRY_S * attempt)
        raise AssertionError("unreachable")

    async def _spawn_once(
        self, card: ModelCard, device: str, index: int, deadline: float
    ) -> tuple[Any, dict[str, Any]]:
        import ray
        import ray.exceptions as rex

        from mmserve.runtime.actor import EngineActor

        name = self.actor_name(card, device, index)
        options = {**self.actor_options(card), "name": name, "lifetime": "detached", "get_if_exists": True}
        make: Any = ray.remote  # (its stubs lack concurrency_groups, which it takes)
        remote_cls: Any = make(concurrency_groups={CONTROL_GROUP: CONTROL_SLOTS})(EngineActor).options(**options)
        actor: Any = remote_cls.remote(
            card.model_dump(mode="json"), str(self.base_dir), str(self.models_dir), device, self.gateway, self.lease_s
        )
        try:
            info = await asyncio.wait_for(
                actor.attach.options(concurrency_group=CONTROL_GROUP).remote(self.gateway, self.lease_s),
                max(1.0, deadline - asyncio.get_running_loop().time()),
            )
        except rex.RayActorError:
            # Dead, or placed on a node that is dying: killed for good, so that its name is free
            # for the next attempt (a name Ray still gives to a dying actor would fail every one).
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
            raise
        except TimeoutError:
            ray.kill(actor)
            raise EngineUnavailableError(
                f"No cluster node could start a replica of '{card.id}' within {self.settings.start_timeout_s:g} s "
                f"(resources asked: {self.actor_options(card)}).",
                code="no_capacity",
            ) from None
        log.info("replica %s of '%s' runs on node %s", name, card.id, str(info["node_id"])[:12])
        return actor, info
