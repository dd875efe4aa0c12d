"""Driver for tests/runtime/test_remote_health.py: health checks of real Ray actors on the test cluster.

Run as ``python -m tests.helpers.ray_health <address>``; prints one JSON line. It is a separate
process so that the test process never joins a Ray cluster (``ray.init`` stays for its life).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import ray
import ray.exceptions as rex

from mmserve.runtime.ray_handle import CONTROL_GROUP, ReplicaHandle
from mmserve.runtime.remote import MISSED_PINGS


@ray.remote(num_cpus=0)
class Hung:
    """A replica whose event loop is busy: it never answers a ping, though Ray sees it alive."""

    async def ping(self) -> bool:
        await asyncio.sleep(3600)
        return True


@ray.remote(num_cpus=0)
class Fine:
    def ping(self) -> bool:
        return True


@ray.remote(num_cpus=0, max_concurrency=1, concurrency_groups={CONTROL_GROUP: 1})
class Busy:
    """A replica whose every call slot is taken by long calls (several gateways' requests)."""

    async def work(self) -> bool:
        await asyncio.sleep(3600)
        return True

    def ping(self, gateway: str | None = None, lease_s: float = 0.0) -> bool:
        return True


async def _state(actor: Any) -> str:
    try:
        await asyncio.wait_for(actor.ping.remote(), 10)
        return "answers"
    except rex.RayActorError:
        return "dead"
    except TimeoutError:
        return "alive"


async def main(address: str) -> dict[str, Any]:
    ray.init(address=address, logging_level="ERROR", namespace="ray-health-test")

    async def respawn() -> tuple[Any, dict[str, Any]]:
        return Fine.remote(), {"node_id": "new"}

    hung = Hung.remote()
    handle = ReplicaHandle(hung, {"node_id": "old"}, respawn)
    checks = [await handle.check(timeout=0.5) for _ in range(MISSED_PINGS)]
    hung_result = {"checks": checks, "generation": handle.generation, "old": await _state(hung)}
    hung_result["healthy_check"] = await handle.check(timeout=10)

    dead = Fine.remote()
    await dead.ping.remote()
    ray.kill(dead, no_restart=True)
    # ray.kill is asynchronous: on a busy machine a ping sent at once may still be answered (seen:
    # the check then found it alive). The case here is an actor Ray knows is dead.
    for _ in range(300):
        if await _state(dead) != "answers":
            break
        await asyncio.sleep(0.1)
    handle = ReplicaHandle(dead, {"node_id": "old"}, respawn)
    dead_result = {"replaced": await handle.check(timeout=10), "generation": handle.generation}

    busy = Busy.remote()
    running = [busy.work.remote() for _ in range(2)]  # one runs, one waits for the slot
    await asyncio.sleep(1)
    shared = ReplicaHandle(busy, {"node_id": "old"}, respawn, gateway="gateway-a", lease_s=30)
    alone = ReplicaHandle(busy, {"node_id": "old"}, respawn)  # pings in the default group
    busy_result = {
        "shared_replaced": await shared.check(timeout=5),
        "shared_missed": shared.missed_pings,
        "default_group_replaced": await alone.check(timeout=2),
        "default_group_missed": alone.missed_pings,
    }
    for ref in running:
        ray.cancel(ref)
    ray.kill(busy)
    return {"missed_pings": MISSED_PINGS, "hung": hung_result, "dead": dead_result, "busy": busy_result}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
