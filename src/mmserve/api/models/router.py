"""GET /v1/models and /v1/models/{id}: OpenAI's list shape plus task, capabilities, pricing, deployment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from mmserve.api.models.service import model_entry
from mmserve.api.openapi import errors
from mmserve.api.state import AppState, get_state
from mmserve.cards import TASKS
from mmserve.catalog.catalog import BOOLEAN_CAPABILITIES
from mmserve.control.context import principal

router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(
    task: str | None = Query(
        default=None, description="Only models of this task.", json_schema_extra={"enum": list(TASKS)}
    ),
    capability: str | None = Query(
        default=None,
        description="Only models with this capability.",
        json_schema_extra={"enum": list(BOOLEAN_CAPABILITIES)},
    ),
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    cards = state.catalog.filter(task=task, capability=capability)
    who = principal()
    visible = [c for c in cards if who.may_use(c.id)]
    return {"object": "list", "data": [model_entry(c, state.runtime.deployment(c)) for c in visible]}


@router.get("/v1/models/{model_id:path}", responses=errors(403, 404))
async def get_model(model_id: str, state: AppState = Depends(get_state)) -> dict[str, Any]:
    card = state.catalog.get(model_id)
    principal().check_model(card.id)
    return model_entry(card, state.runtime.deployment(card))
