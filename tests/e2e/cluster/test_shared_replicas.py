"""Two `mmserve serve` gateways on one real Ray cluster share a card's replica (runtime/cluster.py).

The second gateway attaches to the replica the first one started; the first one stopping
gives its lease back and leaves the replica serving the second; the second one killed (-9,
nothing given back) stops renewing its lease, and the replica, held by nobody, ends. A
serverless replica: the gateway that goes idle gives its lease back while the busy one keeps
the replica, and it ends once both are idle (scale to zero across gateways).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openai import OpenAI

from tests.helpers.process import ServerProcess
from tests.helpers.ray_cluster import RayCluster

CATALOG = {
    "models": [
        {
            "id": "shared-text",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "deployment": {"mode": "dedicated", "replicas": 1, "num_cpus": 0.5},
        },
        {
            "id": "idle-text",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "deployment": {"mode": "serverless", "min_replicas": 0, "idle_unload_s": 6, "num_cpus": 0.5},
        },
    ]
}
INTERVAL_S = 1  # health checks, which renew the gateway's leases: a lease is 3 of them + 10 s


def _gateway(tmp_path: Path, name: str, models_dir: Path, ray_cluster: RayCluster) -> ServerProcess:
    config = tmp_path / "catalog.yaml"
    config.write_text(yaml.safe_dump(CATALOG))
    data = tmp_path / name
    data.mkdir()
    (data / "models").symlink_to(models_dir, target_is_directory=True)
    env = {
        **ray_cluster.env,
        "MMSERVE_CLUSTER__ADDRESS": ray_cluster.address,
        "MMSERVE_CLUSTER__HEALTH_CHECK_INTERVAL_S": str(INTERVAL_S),
        "MMSERVE_IDLE_CHECK_INTERVAL_S": "0.2",
    }
    return ServerProcess(data, config, env=env)


def _replicas(ray_cluster: RayCluster, model: str = "shared-text") -> dict[str, Any]:
    """The cluster's replicas of ``model``, by actor name, with their leases (tests/helpers/ray_actors.py)."""
    found: dict[str, Any] = ray_cluster.run_driver("tests.helpers.ray_actors", "mmserve", f"{model}/")
    return found


def _ask(gateway: ServerProcess, model: str = "shared-text") -> str:
    client = OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=8, seed=3
    )
    return reply.choices[0].message.content or ""


def _deployment(gateway: ServerProcess, model: str = "shared-text") -> dict[str, Any]:
    return httpx.get(f"{gateway.url}/v1/models/{model}", timeout=10).json()["deployment"]  # type: ignore[no-any-return]


Gateways = tuple[ServerProcess, ServerProcess]


@pytest.fixture
def gateways(tmp_path: Path, models_dir: Path, ray_cluster: RayCluster) -> Iterator[Gateways]:
    """Gateways A and B, the same catalog, one cluster (each with its own data dir), started in turn."""
    a = _gateway(tmp_path, "a", models_dir, ray_cluster)
    b = _gateway(tmp_path, "b", models_dir, ray_cluster)
    try:
        a.start(wait_for=["shared-text"], timeout=300)
        b.start(wait_for=["shared-text"], timeout=300)
        yield a, b
    finally:
        a.stop()
        b.stop()


def _wait_until_gone(ray_cluster: RayCluster, name: str, model: str) -> None:
    deadline = time.monotonic() + 90
    while name in _replicas(ray_cluster, model):
        assert time.monotonic() < deadline, f"replica {name} outlived every gateway's lease and use"
        time.sleep(1)


@pytest.mark.slow
def test_two_gateways_share_one_replica_which_ends_with_the_last_of_them(
    gateways: Gateways, ray_cluster: RayCluster
) -> None:
    a, b = gateways
    replicas = _replicas(ray_cluster)
    assert len(replicas) == 1, replicas  # one replica on the cluster, not one per gateway
    ((name, first),) = replicas.items()
    assert len(first["holders"]) == 2
    assert _deployment(a)["replica_nodes"] == _deployment(b)["replica_nodes"]
    answer = _ask(a)
    assert answer and _ask(b) == answer

    a.stop()  # gives its lease back
    after = _replicas(ray_cluster)
    assert after[name]["actor_id"] == first["actor_id"]  # the same actor: B still holds it
    assert len(after[name]["holders"]) == 1
    assert _ask(b) == answer
    assert _deployment(b)["replica_restarts"] == 0

    b.kill9()  # nothing given back: its lease runs out, and nobody holds the replica
    _wait_until_gone(ray_cluster, name, "shared-text")


@pytest.mark.slow
def test_a_gateway_gone_idle_gives_its_lease_back_and_the_busy_one_keeps_the_replica(
    gateways: Gateways, ray_cluster: RayCluster
) -> None:
    a, b = gateways
    stop_a, stop_b = threading.Event(), threading.Event()
    answers: dict[str, list[str]] = {"a": [], "b": []}

    def keep_busy(gateway: ServerProcess, stop: threading.Event, mine: list[str]) -> None:  # within idle_unload_s
        while not stop.is_set():
            mine.append(_ask(gateway, "idle-text"))
            time.sleep(0.3)

    answer = _ask(a, "idle-text")  # a cold start on A: the replica is started
    assert answer
    # Both stay busy while the cluster is asked who holds the replica (a Ray driver of its own,
    # which can take longer than idle_unload_s on a loaded machine): B attaches, neither lets go.
    busy = [
        threading.Thread(target=keep_busy, args=(a, stop_a, answers["a"])),
        threading.Thread(target=keep_busy, args=(b, stop_b, answers["b"])),
    ]
    for thread in busy:
        thread.start()
    try:
        deadline = time.monotonic() + 90
        while True:
            replicas = _replicas(ray_cluster, "idle-text")
            if len(replicas) == 1 and len(next(iter(replicas.values()))["holders"]) == 2:
                break
            assert time.monotonic() < deadline, f"B never attached to A's replica: {replicas}"
            time.sleep(0.5)
        ((name, first),) = replicas.items()
        stop_a.set()  # A goes idle, B stays busy
        busy[0].join(timeout=120)
        b_before = len(answers["b"])  # B answers from here on while A lets go
        deadline = time.monotonic() + 60
        while _deployment(a, "idle-text")["replicas_loaded"]:  # A unloads its idle replica...
            assert time.monotonic() < deadline, "A never unloaded its idle replica"
            time.sleep(0.2)
        after = _replicas(ray_cluster, "idle-text")
    finally:
        stop_a.set()
        stop_b.set()
        for thread in busy:
            thread.join(timeout=120)
    assert after[name]["actor_id"] == first["actor_id"]  # ...which lives on for B
    assert len(after[name]["holders"]) == 1
    assert set(answers["a"]) <= {answer}
    assert len(answers["b"]) - b_before >= 3 and set(answers["b"]) == {answer}
    assert _deployment(b, "idle-text")["replica_restarts"] == 0

    _wait_until_gone(ray_cluster, name, "idle-text")  # B idle too: nobody holds the replica, and it ends
    assert _deployment(b, "idle-text")["replicas_loaded"] == 0
