"""Names of shared replicas on a cluster (runtime/cluster.py): who shares a replica, who must not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmserve.cards import ModelCard
from mmserve.runtime.cluster import Cluster
from mmserve.settings import ClusterSettings


def _name(card: dict[str, Any], *, base: str = "/etc/mm", models: str = "/data/a/models", index: int = 0) -> str:
    cluster = Cluster(ClusterSettings(address="auto"), base_dir=Path(base), models_dir=Path(models))
    return cluster.actor_name(ModelCard.model_validate(card), "cpu", index)


CARD = {"id": "tiny", "task": "chat", "engine": "transformers-chat", "source": "demo:text-lm"}


def test_gateways_with_the_same_card_name_the_same_replicas() -> None:
    name = _name(CARD)
    assert name.startswith("tiny/") and name.endswith("/0")
    # another gateway, with its own data dir (where it builds demo models) and catalog directory
    assert _name(dict(CARD), base="/srv/catalog", models="/data/b/models") == name
    absolute = {**CARD, "source": "/weights/tiny"}
    assert _name(absolute) == _name(absolute, base="/srv/catalog")


def test_another_card_index_or_meaning_of_the_source_is_another_replica() -> None:
    name = _name(CARD)
    assert _name(CARD, index=1) != name
    assert _name({**CARD, "options": {"max_batch_size": 4}}) != name
    assert _name({**CARD, "deployment": {"num_cpus": 2}}) != name
    relative = {**CARD, "source": "models/tiny"}  # each gateway's catalog directory: maybe other weights
    assert _name(relative, base="/srv/one") != _name(relative, base="/srv/two")
    assert _name(relative, base="/srv/one") == _name(relative, base="/srv/one", models="/elsewhere")
