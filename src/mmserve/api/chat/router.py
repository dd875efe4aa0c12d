"""POST /v1/chat/completions (and /chat/completions at the host root, as aleph-alpha-client posts)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sse_starlette import EventSourceResponse

from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.api.chat.service import ChatService
from mmserve.api.state import AppState, get_state

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions")
@router.post("/chat/completions", include_in_schema=False)
async def chat_completions(req: ChatCompletionRequest, state: AppState = Depends(get_state)) -> Any:
    service = ChatService(state)
    if req.stream:
        return EventSourceResponse(await service.stream(req), sep="\n", ping=15)
    return await service.complete(req)
