"""Which gateways hold a shared replica, and when it may end (see :mod:`mmserve.runtime.cluster`).

A replica on a Ray cluster is a detached actor that every gateway with the same card attaches
to, so it cannot end with the gateway that started it. Each gateway holds a lease on it: taken
when it attaches, renewed by its health-check pings, given back when it unloads the replica
(idle, eviction, shutdown). A gateway killed without giving it back (kill -9, a lost machine)
stops renewing, and its lease runs out. The replica ends when nobody holds it and no call is
running on it; a running call means a live gateway, so a late ping never stops a busy replica.
"""

from __future__ import annotations

import threading


class Holders:
    """Gateways' leases on one replica: gateway id -> when its lease runs out (monotonic seconds).

    Thread-safe: the actor's calls take and give back leases on its event loop, its watcher
    thread reads them.
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.running = 0  # calls in progress (streams not yet ended), counted on the event loop

    def hold(self, gateway: str, lease_s: float, now: float) -> None:
        """Take or renew ``gateway``'s lease for ``lease_s`` from ``now``."""
        with self._lock:
            self._until[gateway] = max(self._until.get(gateway, now), now + lease_s)

    def release(self, gateway: str) -> None:
        with self._lock:
            self._until.pop(gateway, None)

    def gateways(self, now: float) -> list[str]:
        """The gateways whose lease runs at ``now``."""
        with self._lock:
            return sorted(g for g, until in self._until.items() if until > now)

    def unheld(self, now: float) -> bool:
        """Whether the replica may end: no lease left at ``now`` and no call running."""
        return not self.gateways(now) and self.running == 0
