"""Probes (never need a key): GET /health (liveness) and GET /ready (readiness).

``/health`` answers 200 as soon as the server listens, while models still load: the process is
alive (Kubernetes' livenessProbe, and clients that want each model's load state). ``/ready``
answers 200 once every model the server keeps loaded (dedicated ones, serverless
``min_replicas``) is loaded and serving, 503 before that or while one is down (a failed load, a
vLLM server restarting): Kubernetes' readinessProbe and startupProbe, load balancers.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from mmserve.api.state import AppState, get_state

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(state: AppState = Depends(get_state)) -> dict[str, Any]:
    return {
        "status": "ok",
        "auth": state.settings.auth,  # clients (the console) learn that a key is needed without a 401
        "models": _models(state),
    }


@router.get("/ready", responses={503: {"description": "Not ready: models still loading, or one is down."}})
async def ready(state: AppState = Depends(get_state)) -> JSONResponse:
    runtime = state.runtime
    if runtime.ready:
        return JSONResponse({"status": "ready", "models": _models(state)})
    waiting = runtime.not_ready()
    body = {"status": "starting" if not runtime.started else "unavailable", "waiting_for": waiting}
    return JSONResponse({**body, "models": _models(state)}, status_code=503, headers={"Retry-After": "1"})


def _models(state: AppState) -> dict[str, str]:
    return {cid: dep.state for cid, dep in state.runtime.deployments.items()}
