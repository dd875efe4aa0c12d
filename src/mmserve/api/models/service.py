"""The catalog as the API (and `mmserve models`) shows it."""

from __future__ import annotations

from typing import Any

from mmserve.cards import ModelCard
from mmserve.engines.base import SpeechEngine
from mmserve.runtime.deployment import Deployment

CREATED = 1_767_225_600  # 2026-01-01: cards have no creation date of their own


def model_entry(card: ModelCard, dep: Deployment | None) -> dict[str, Any]:
    """OpenAI's model object plus task, capabilities, limits, pricing and live deployment state."""
    live: dict[str, Any] = {
        "state": None,
        "runs_in": None,
        "replicas_loaded": None,
        "replica_nodes": None,
        "replica_restarts": None,
        "active": None,
        "queue_depth": None,
        "load_seconds": None,
        "error": None,
    }
    if dep is not None:
        live = {
            "state": dep.state,
            "runs_in": dep.runs_in,
            "replicas_loaded": dep.loaded_replicas,
            "replica_nodes": dep.replica_nodes,
            "replica_restarts": dep.replica_restarts,
            "active": dep.active,
            "max_concurrency": dep.max_concurrency,
            "queue_depth": dep.queue_depth,
            "load_seconds": dep.load_seconds,
            "error": dep.error,
        }
    return {
        "id": card.id,
        "object": "model",
        "created": CREATED,
        "owned_by": card.owned_by,
        "task": card.task,
        "description": card.description,
        "engine": card.engine,
        "aliases": card.aliases,
        "capabilities": {**card.capabilities.model_dump(by_alias=False), **_engine_capabilities(dep)},
        "limits": card.limits.model_dump(),
        "pricing": card.pricing.model_dump(),
        "deployment": {**card.deployment.model_dump(exclude={"device"}), **live},
    }


def _engine_capabilities(dep: Deployment | None) -> dict[str, Any]:
    """What a loaded engine knows better than its card: a speech engine's voices (espeak-ng's, a
    multi-speaker model's speakers) when the card lists none."""
    engine = dep.engine if dep is not None else None
    if isinstance(engine, SpeechEngine):
        return {"voices": engine.voices()}
    return {}
