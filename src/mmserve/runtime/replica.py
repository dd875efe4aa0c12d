"""One replica of a deployment: its engine, its load and use, and (remote) its health checks."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from mmserve.engines.base import Engine
from mmserve.errors import MMServeError

if TYPE_CHECKING:
    from mmserve.runtime.remote import Handle

log = logging.getLogger("mmserve.runtime")


class Replica:
    def __init__(self, index: int) -> None:
        self.index = index
        self.engine: Engine | None = None
        self.active = 0
        self.loading = False
        self.loader: asyncio.Task[Engine] | None = None  # the load in progress, awaited by every request for it
        self.pending: Engine | None = None  # the engine whose load() runs in a thread now (for abort_load)
        self.health: asyncio.Task[None] | None = None  # its health check in progress (on a cluster)
        self.lock = asyncio.Lock()
        self.last_used = time.monotonic()

    def check_health(self, model: str) -> None:
        """Ping the replica if it is remote (which renews this gateway's lease on a shared one); a dead
        or hung one is started again (Ray places it on a live node).

        Each check is a task of its own, and a replica whose last check still runs is skipped: a
        replacement that loads for minutes holds up no other replica's ping (or lease).
        """
        from mmserve.runtime.remote import PING_TIMEOUT_S, Handle

        handle = getattr(self.engine, "handle", None)
        if isinstance(handle, Handle) and (self.health is None or self.health.done()):
            self.health = asyncio.create_task(self._check(model, handle, PING_TIMEOUT_S))

    async def _check(self, model: str, handle: Handle, timeout: float) -> None:
        try:
            if await handle.check(timeout=timeout):
                log.warning("replica %d of '%s' was lost: started again", self.index, model)
        except MMServeError as e:
            log.error("could not restart replica %d of '%s': %s", self.index, model, e)
        except Exception:  # the next round tries again
            log.exception("health check of replica %d of '%s' failed", self.index, model)
