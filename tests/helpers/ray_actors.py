"""Prints the shared replicas of the test Ray cluster whose names start with a prefix, and their leases.

Run as ``python -m tests.helpers.ray_actors <address> <namespace> <prefix>``; prints one JSON
line, ``{actor name: EngineActor.lease_state()}``. A separate process, so that the test
process never joins a Ray cluster.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import ray
import ray.exceptions as rex


def main(address: str, namespace: str, prefix: str) -> dict[str, Any]:
    ray.init(address=address, namespace=namespace, logging_level="ERROR")
    found: dict[str, Any] = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != namespace or not entry["name"].startswith(prefix):
            continue
        try:
            actor = ray.get_actor(entry["name"], namespace=namespace)
            found[entry["name"]] = ray.get(actor.lease_state.remote(), timeout=60)
        except (ValueError, rex.RayActorError):  # it ended meanwhile
            continue
    return found


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
