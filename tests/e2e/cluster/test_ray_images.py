"""Streaming partial images from an image replica placed on the Ray cluster: previews travel through the actor."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from openai import OpenAI
from PIL import Image

from tests.helpers.process import ServerProcess
from tests.helpers.ray_cluster import RayCluster

CATALOG = {
    "models": [
        {
            "id": "ray-image",
            "task": "image-generation",
            "engine": "diffusers-image",
            "source": "demo:image",
            "options": {"quality_steps": {"low": 2, "medium": 3, "high": 4}},
            "capabilities": {"sizes": ["128x128"]},
            "deployment": {"mode": "dedicated", "num_cpus": 0.5},
        },
    ]
}


@pytest.fixture
def gateway(tmp_path: Path, models_dir: Path, ray_cluster: RayCluster) -> Iterator[ServerProcess]:
    config = tmp_path / "catalog.yaml"
    config.write_text(yaml.safe_dump(CATALOG))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models").symlink_to(models_dir, target_is_directory=True)
    server = ServerProcess(
        tmp_path / "data", config, env={**ray_cluster.env, "MMSERVE_CLUSTER__ADDRESS": ray_cluster.address}
    )
    try:
        yield server.start(wait_for=["ray-image"], timeout=300)
    finally:
        server.stop()


@pytest.mark.slow
def test_partial_images_stream_from_a_ray_replica(gateway: ServerProcess) -> None:
    deployment = httpx.get(f"{gateway.url}/v1/models/ray-image", timeout=10).json()["deployment"]
    assert deployment["replica_nodes"]  # placed on the cluster, not in the gateway
    client = OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    events = list(
        client.images.generate(model="ray-image", prompt="a boat", stream=True, partial_images=2, quality="high")
    )
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    for e in events:
        assert Image.open(io.BytesIO(base64.b64decode(e.b64_json))).size == (128, 128)
