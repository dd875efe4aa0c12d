"""GET /metrics: Prometheus text exposition of this app's registry."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mmserve.api.state import AppState, get_state

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(state: AppState = Depends(get_state)) -> Response:
    await state.runtime.refresh_stats()  # engines with servers of their own (vLLM) report their queues
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
