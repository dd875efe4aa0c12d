"""GET /v1/models and /v1/models/{id}: OpenAI's list shape plus task, capabilities, pricing, deployment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from mmserve.api.models.service import model_entry
from mmserve.api.state import AppState, get_state

router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(
    task: str | None = Query(default=None, description="chat, image-generation, speech, ..."),
    capability: str | None = Query(default=None, description="e.g. vision, tools, reasoning"),
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    cards = state.catalog.filter(task=task, capability=capability)
    return {"object": "list", "data": [model_entry(c, state) for c in cards]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, state: AppState = Depends(get_state)) -> dict[str, Any]:
    return model_entry(state.catalog.get(model_id), state)
