"""A Ray actor's replica handle: the calls of a remote engine (:mod:`mmserve.runtime.remote`) on Ray.

When the actor's node dies (or the actor does), the call is retried on a new actor that Ray
places on a live node (:meth:`ReplicaHandle.replace`), by the rule of :func:`remote.lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mmserve.errors import EngineError, MMServeError
from mmserve.runtime.remote import MAX_RESPAWNS, MISSED_PINGS, lost

log = logging.getLogger("mmserve.cluster")

RELEASE_TIMEOUT_S = 10.0
# The replica actor's concurrency group for pings, attaching and releasing (cluster.py makes the
# actor class with it): they never wait behind the calls that fill the default group. A shared
# replica may be sent as many calls as its card admits by every gateway at once; its pings
# queued behind them would time out, and a busy replica would be "replaced" as hung.
CONTROL_GROUP = "control"
CONTROL_SLOTS = 4


class ReplicaHandle:
    """One replica's actor, replaced by ``respawn`` when it dies (the deployment's loader makes the new one).

    With ``gateway``, the actor is shared with other gateways (:mod:`mmserve.runtime.lease`):
    each ping renews this gateway's lease on it for ``lease_s``, and :meth:`release` gives the
    lease back instead of killing it; both go through the actor's :data:`CONTROL_GROUP`.
    Without, it is this gateway's alone: released is killed.
    """

    def __init__(
        self,
        actor: Any,
        info: dict[str, Any],
        respawn: Callable[[], Awaitable[tuple[Any, dict[str, Any]]]],
        *,
        gateway: str | None = None,
        lease_s: float = 0.0,
    ):
        self.actor = actor
        self.info = info
        self.gateway = gateway
        self.lease_s = lease_s
        self.generation = 0
        self.restarts = 0
        self.missed_pings = 0
        self._respawn = respawn
        self._lock = asyncio.Lock()

    async def replace(self, seen: int) -> None:
        """A new actor, unless another call already replaced the one that failed (generation ``seen``)."""
        async with self._lock:
            if self.generation != seen:
                return
            log.warning("replica actor on node %s lost; starting a new one", str(self.info.get("node_id"))[:12])
            # Killed first (a no-op when it is dead already): a hung actor still holds its CPUs and
            # slots, which the new one may need, and its callers then fail over to the new one.
            self.kill()
            self.actor, self.info = await self._respawn()
            self.missed_pings = 0
            self.generation += 1
            self.restarts += 1

    async def stream(self, method: str, *args: Any, replayable: bool = False) -> AsyncIterator[Any]:
        """Items of an actor generator, retried on a new actor if it dies.

        A retry is safe while nothing was yielded. After that only a ``replayable`` call (one
        that makes the same items again: seeded or greedy sampling) continues, on the new
        actor, past the items already yielded.
        """
        import ray.exceptions as rex

        attempt, sent = 0, 0
        while True:
            seen, index, ended = self.generation, 0, False
            gen = getattr(self.actor, method).options(num_returns="streaming").remote(*args)
            try:
                async for ref in gen:
                    items, ended = await _value(ref)  # the items that were ready together (actor.batched)
                    for item in items:
                        index += 1
                        if index > sent:
                            sent = index
                            yield item
                    if ended:  # the last batch: no need to wait for the task's end (a round trip)
                        return
                return
            except (rex.ActorDiedError, rex.ActorUnavailableError, rex.NodeDiedError) as e:
                if (error := lost(sent, replayable, attempt)) is not None:
                    raise error from e
                attempt += 1
                await self.replace(seen)
            except rex.RayTaskError as e:
                cause = e.cause
                if isinstance(cause, MMServeError):
                    raise cause from None
                log.error("remote engine failed: %s", e)
                raise EngineError("The model failed while serving this request.") from None
            finally:
                if not ended:
                    _cancel(gen)  # stops the actor's generator if the caller left early

    async def call(self, method: str, *args: Any) -> Any:
        import ray.exceptions as rex

        for attempt in range(MAX_RESPAWNS + 1):
            seen = self.generation
            try:
                return await getattr(self.actor, method).remote(*args)
            except (rex.ActorDiedError, rex.ActorUnavailableError, rex.NodeDiedError):
                if attempt == MAX_RESPAWNS:
                    raise
                await self.replace(seen)
        raise AssertionError("unreachable")

    async def check(self, timeout: float) -> bool:
        """Ping the actor; replace it when Ray says it died or it missed :data:`MISSED_PINGS` in a row.

        Returns whether it was replaced.
        """
        import ray.exceptions as rex

        seen = self.generation
        try:
            # a shared replica's ping renews this gateway's lease on it
            if self.gateway:
                ping = self.actor.ping.options(concurrency_group=CONTROL_GROUP).remote(self.gateway, self.lease_s)
            else:
                ping = self.actor.ping.remote()
            await asyncio.wait_for(ping, timeout)
            self.missed_pings = 0
            return False
        except (rex.ActorDiedError, rex.ActorUnavailableError, rex.NodeDiedError):
            pass  # dead: replace now
        except TimeoutError:
            self.missed_pings += 1
            if self.missed_pings < MISSED_PINGS:
                node = str(self.info.get("node_id"))[:12]
                log.warning("replica on node %s missed a ping (%d in a row)", node, self.missed_pings)
                return False
        if self.generation != seen:
            return False  # a caller replaced it meanwhile
        await self.replace(seen)
        return True

    async def release(self) -> None:
        """This gateway is done with the replica: its lease is given back (a shared actor ends when
        no gateway holds it), or the actor is killed (one of this gateway's own)."""
        if self.gateway is None:
            self.kill()
            return
        with contextlib.suppress(Exception):  # gone already, or unreachable: the lease runs out anyway
            release = self.actor.release.options(concurrency_group=CONTROL_GROUP)
            await asyncio.wait_for(release.remote(self.gateway), RELEASE_TIMEOUT_S)

    def kill(self) -> None:
        import ray

        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actor, no_restart=True)


async def _value(ref: Any) -> Any:
    """The object of a ref that a stream yielded (so it exists: ``async for`` waited for it).

    ``await ref`` asks Ray's IO thread for it and is woken from there: measured 0.1-0.5 ms a
    batch on a busy machine. An object that is here already (a small one comes inside the
    stream's report) is read at once; one that is not (a large one in another node's store) is
    awaited, never fetched while this loop blocks.
    """
    import ray

    ready, _ = ray.wait([ref], timeout=0, fetch_local=True)
    return ray.get(ref) if ready else await ref


def _cancel(gen: Any) -> None:
    """Stop the actor generator (a no-op once it finished)."""
    import ray

    with contextlib.suppress(Exception):  # finished, or its actor is gone: nothing to stop
        ray.cancel(gen)
