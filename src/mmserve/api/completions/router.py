"""POST /v1/completions (OpenAI's legacy completions) on chat cards."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from mmserve.api.completions.protocol import CompletionRequest
from mmserve.api.completions.service import CompletionService
from mmserve.api.disconnect import cancel_on_disconnect
from mmserve.api.state import AppState, get_state
from mmserve.api.streaming import ReleasingEventSourceResponse

router = APIRouter(tags=["completions"])


@router.post("/v1/completions")
async def completions(req: CompletionRequest, request: Request, state: AppState = Depends(get_state)) -> Any:
    service = CompletionService(state)
    if req.stream:
        stream = await cancel_on_disconnect(request, service.stream(req))
        return ReleasingEventSourceResponse(stream, sep="\n", ping=15)
    return await cancel_on_disconnect(request, service.complete(req))
