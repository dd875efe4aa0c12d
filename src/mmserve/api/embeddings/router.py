"""POST /v1/embeddings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from mmserve.api.disconnect import cancel_on_disconnect
from mmserve.api.embeddings.protocol import EmbeddingRequest
from mmserve.api.embeddings.service import EmbeddingService
from mmserve.api.openapi import errors
from mmserve.api.state import AppState, get_state

router = APIRouter(tags=["embeddings"])


@router.post("/v1/embeddings", responses=errors(415, 422))
async def create_embeddings(req: EmbeddingRequest, request: Request, state: AppState = Depends(get_state)) -> Any:
    return await cancel_on_disconnect(request, EmbeddingService(state).create(req))
