"""``ray start`` for a node of a test cluster on loopback (run as ``python -m tests.helpers.ray_node start ...``).

Ray swaps a loopback ``--node-ip-address`` (and the loopback GCS address) for the machine's
outward address, so that other machines can reach the node. A test cluster must stay on
127.0.0.1: for a head node ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` does it, but that
setting also refuses to join a head, so a second node starts through this wrapper, which
keeps loopback addresses as given.
"""

from __future__ import annotations

import sys

import ray._private.services as services


def _loopback(address: object = None) -> str:
    return "127.0.0.1"


def _keep(host: str) -> str:
    return host


services.get_node_ip_address = _loopback
services.resolve_ip_for_localhost = _keep

if __name__ == "__main__":
    from ray.scripts.scripts import main

    sys.exit(main())
