"""GET /health: liveness, whether keys are needed, and each model's load state (never needs a key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from mmserve.api.state import AppState, get_state

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(state: AppState = Depends(get_state)) -> dict[str, Any]:
    return {
        "status": "ok",
        "auth": state.settings.auth,  # clients (the console) learn that a key is needed without a 401
        "models": {cid: dep.state for cid, dep in state.runtime.deployments.items()},
    }
