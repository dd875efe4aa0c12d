"""POST /v1/completions (OpenAI's legacy completions) on chat cards."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from mmserve.api.completions.protocol import CompletionRequest
from mmserve.api.completions.service import CompletionService
from mmserve.api.disconnect import cancel_on_disconnect
from mmserve.api.openapi import json_or_stream
from mmserve.api.state import AppState, get_state
from mmserve.api.streaming import ReleasingEventSourceResponse

router = APIRouter(tags=["completions"])


@router.post("/v1/completions", responses=json_or_stream("A completion or a stream"))
async def completions(req: CompletionRequest, request: Request, state: AppState = Depends(get_state)) -> Any:
    service = CompletionService(state)
    if req.stream:
        stream = await cancel_on_disconnect(request, service.stream(req))
        return ReleasingEventSourceResponse(stream, sep="\n", ping=15)
    return await cancel_on_disconnect(request, service.complete(req))
