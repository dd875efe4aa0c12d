"""Engine replicas on a real two-node Ray cluster (tests/helpers/ray_cluster.py), behind a real `mmserve serve`.

A card with two replicas lands on both nodes; chat streams through an actor generator; one
node is killed (-9, all its processes) while requests run on it: they fail over, and the
replica is started again on the surviving node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml
from openai import OpenAI

from tests.helpers.process import ServerProcess
from tests.helpers.ray_cluster import RayCluster

CATALOG = {
    "models": [
        {
            "id": "slow-text",  # every decoding step takes tests.helpers.faulty.STEP_S (in the replica)
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "options": {"logits_processors": ["tests.helpers.faulty:SlowSteps"]},
            "limits": {"max_output_tokens": 64},
            "deployment": {
                "mode": "dedicated",
                "replicas": 2,
                "num_cpus": 0.5,
                "resources": {"mmserve_test": 1},  # both nodes have 2: a replica can move
                "placement": "spread",
            },
        },
    ]
}


@pytest.fixture
def gateway(tmp_path: Path, models_dir: Path, ray_cluster: RayCluster) -> Iterator[ServerProcess]:
    config = tmp_path / "catalog.yaml"
    config.write_text(yaml.safe_dump(CATALOG))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models").symlink_to(models_dir, target_is_directory=True)
    env = {
        **ray_cluster.env,
        "MMSERVE_CLUSTER__ADDRESS": ray_cluster.address,
        "MMSERVE_CLUSTER__HEALTH_CHECK_INTERVAL_S": "1",
    }
    server = ServerProcess(tmp_path / "data", config, env=env)
    try:
        yield server.start(wait_for=["slow-text"], timeout=300)
    finally:
        server.stop()


def _deployment(url: str) -> dict:
    return httpx.get(f"{url}/v1/models/slow-text", timeout=10).json()["deployment"]


@pytest.mark.slow
def test_replicas_spread_stream_and_fail_over_when_a_node_dies(gateway: ServerProcess, ray_cluster: RayCluster) -> None:
    names = ray_cluster.node_names()
    assert _deployment(gateway.url)["runs_in"] == "cluster"
    placed = _deployment(gateway.url)["replica_nodes"]
    assert sorted(names[n] for n in placed) == ["b", "head"]

    client = OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    stream = client.chat.completions.create(
        model="slow-text", messages=[{"role": "user", "content": "hello"}], max_tokens=8, stream=True, seed=1
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    same = client.chat.completions.create(
        model="slow-text", messages=[{"role": "user", "content": "hello"}], max_tokens=8, seed=1
    )
    assert same.choices[0].message.content == text  # the stream carried every delta, in order

    def ask(i: int) -> str:
        r = client.chat.completions.create(
            model="slow-text", messages=[{"role": "user", "content": f"story {i}"}], max_tokens=64, seed=i
        )
        return r.choices[0].finish_reason

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(ask, i) for i in range(6)]
        time.sleep(0.5)  # requests are running on both replicas
        assert _deployment(gateway.url)["active"] > 0
        ray_cluster.kill_node("b")
        reasons = [f.result(timeout=240) for f in futures]
    assert all(r in ("stop", "length") for r in reasons), reasons

    deadline = time.monotonic() + 60
    while True:
        dep = _deployment(gateway.url)
        if dep["replicas_loaded"] == 2 and all(n in names and names[n] == "head" for n in dep["replica_nodes"]):
            break
        assert time.monotonic() < deadline, dep
        time.sleep(0.5)
    assert dep["replica_restarts"] >= 1
    assert client.chat.completions.create(
        model="slow-text", messages=[{"role": "user", "content": "still there?"}], max_tokens=4
    ).choices
