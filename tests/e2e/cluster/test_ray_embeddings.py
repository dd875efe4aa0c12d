"""An embedding card whose replica is a Ray actor: vectors, images and errors come back as in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from openai import OpenAI

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.engines.transformers_embedding import TransformersEmbeddingEngine
from mmserve.engines.types import EmbeddingInput, EmbeddingItem
from tests.helpers.images import data_uri
from tests.helpers.process import ServerProcess
from tests.helpers.ray_cluster import RayCluster

CARD = {
    "id": "ray-embed",
    "task": "embedding",
    "engine": "transformers-embedding",
    "source": "demo:clip",
    "capabilities": {"vision": True, "embedding_dimensions": 32, "matryoshka": True},
    "deployment": {"mode": "dedicated", "num_cpus": 0.5, "resources": {"mmserve_test": 1}},
}


@pytest.fixture
def gateway(tmp_path: Path, models_dir: Path, ray_cluster: RayCluster) -> Iterator[ServerProcess]:
    config = tmp_path / "catalog.yaml"
    config.write_text(yaml.safe_dump({"models": [CARD]}))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models").symlink_to(models_dir, target_is_directory=True)
    env = {**ray_cluster.env, "MMSERVE_CLUSTER__ADDRESS": ray_cluster.address}
    server = ServerProcess(tmp_path / "data", config, env=env)
    try:
        yield server.start(wait_for=["ray-embed"], timeout=300)
    finally:
        server.stop()


@pytest.mark.slow
def test_embeddings_from_a_ray_replica(gateway: ServerProcess, models_dir: Path) -> None:
    placed = httpx.get(f"{gateway.url}/v1/models/ray-embed", timeout=10).json()["deployment"]["replica_nodes"]
    assert len(placed) == 1
    client = OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    image = data_uri((56, 56), (200, 30, 30))  # the processor's size: no resize before it
    r = client.embeddings.create(
        model="ray-embed", input=["a red square", {"type": "image_url", "image_url": {"url": image}}]
    )
    source = build_demo_model("clip", models_dir)
    local = TransformersEmbeddingEngine(ModelCard.model_validate(CARD), source=source, device="cpu")
    local.load()
    text = asyncio.run(local.embed(EmbeddingInput([EmbeddingItem(text="a red square")]))).vectors[0]
    assert np.allclose(r.data[0].embedding, text, atol=1e-5) and len(r.data[1].embedding) == 32
    too_long = httpx.post(
        f"{gateway.url}/v1/embeddings", json={"model": "ray-embed", "input": ["ok", "word " * 100]}, timeout=60
    )
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "input[1]"  # raised in the actor
