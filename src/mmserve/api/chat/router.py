"""POST /v1/chat/completions (and /chat/completions at the host root, as aleph-alpha-client posts)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.api.chat.service import ChatService
from mmserve.api.disconnect import cancel_on_disconnect
from mmserve.api.openapi import MODEL, errors, json_or_stream
from mmserve.api.state import AppState, get_state
from mmserve.api.streaming import ReleasingEventSourceResponse

router = APIRouter(tags=["chat"])


@router.post(
    "/v1/chat/completions",
    responses={**json_or_stream("A completion or a stream"), **errors(*MODEL, 415, 422)},
)
@router.post("/chat/completions", include_in_schema=False)
async def chat_completions(req: ChatCompletionRequest, request: Request, state: AppState = Depends(get_state)) -> Any:
    service = ChatService(state)
    if req.stream:  # until the stream's first event (queue, load, prompt), then sse-starlette watches the client
        stream = await cancel_on_disconnect(request, service.stream(req))
        return ReleasingEventSourceResponse(stream, sep="\n", ping=15)
    return await cancel_on_disconnect(request, service.complete(req))
