"""POST /v1/responses, GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from mmserve.api.disconnect import cancel_on_disconnect
from mmserve.api.openapi import errors, json_or_stream
from mmserve.api.responses.protocol import ResponseRequest
from mmserve.api.responses.service import ResponsesService
from mmserve.api.state import AppState, get_state
from mmserve.api.streaming import ReleasingEventSourceResponse

router = APIRouter(tags=["responses"])


@router.post("/v1/responses", responses={**json_or_stream("A response or a stream"), **errors(415, 422)})
async def create_response(req: ResponseRequest, request: Request, state: AppState = Depends(get_state)) -> Any:
    service = ResponsesService(state)
    if req.stream:
        stream = await cancel_on_disconnect(request, service.stream(req))
        return ReleasingEventSourceResponse(stream, sep="\n", ping=15)
    return await cancel_on_disconnect(request, service.create(req))


@router.get("/v1/responses/{response_id}")
async def get_response(response_id: str, state: AppState = Depends(get_state)) -> dict[str, Any]:
    return await ResponsesService(state).retrieve(response_id)


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, state: AppState = Depends(get_state)) -> dict[str, Any]:
    return await ResponsesService(state).delete(response_id)


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    after: str | None = Query(default=None, description="The last item id of the previous page."),
    limit: int = Query(default=20, ge=1, le=100),
    order: Literal["asc", "desc"] = Query(default="desc"),
    state: AppState = Depends(get_state),
) -> dict[str, Any]:
    return await ResponsesService(state).input_items(response_id, after=after, limit=limit, order=order)
