"""POST /v1/images/generations (JSON), /v1/images/edits (multipart or JSON), /v1/images/variations (multipart).

``stream: true`` answers server-sent events (partial images, then the finished ones).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from mmserve.api.images.multipart import read_edit_form
from mmserve.api.images.protocol import ImageGenerationRequest, edit_body_schema, variation_form_schema
from mmserve.api.images.service import ImagesResult, ImagesService
from mmserve.api.jsonerrors import loads
from mmserve.api.openapi import MODEL, errors, json_or_stream
from mmserve.api.state import AppState, get_state
from mmserve.api.streaming import ReleasingEventSourceResponse, Stream
from mmserve.storage.signing import public_base_url

router = APIRouter(tags=["images"])


def _answer(result: ImagesResult | Stream) -> Any:
    if isinstance(result, Stream):
        return ReleasingEventSourceResponse(result, sep="\n", ping=15)
    return Response(result.json_bytes(), media_type="application/json")


@router.post("/v1/images/generations", responses={**json_or_stream("Images, or image events"), **errors(*MODEL)})
async def images_generations(
    req: ImageGenerationRequest, request: Request, state: AppState = Depends(get_state)
) -> Any:
    return _answer(await ImagesService(state).generate(req, public_base_url(request, state.settings)))


@router.post(
    "/v1/images/edits",
    responses={**json_or_stream("Images, or image events"), **errors(*MODEL, 415, 422)},
    openapi_extra={"requestBody": edit_body_schema()},
)
async def images_edits(request: Request, state: AppState = Depends(get_state)) -> Any:
    service, base_url = ImagesService(state), public_base_url(request, state.settings)
    if request.headers.get("content-type", "").lower().startswith("application/json"):
        return _answer(await service.edit_json(loads(await request.body()), base_url))
    form = await read_edit_form(request, state.settings.limits)
    return _answer(await service.edit(form, base_url))


@router.post(
    "/v1/images/variations",
    responses=errors(*MODEL, 415),
    openapi_extra={
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": variation_form_schema()}}}
    },
)
async def images_variations(request: Request, state: AppState = Depends(get_state)) -> Any:
    form = await read_edit_form(request, state.settings.limits, endpoint="/v1/images/variations")
    return _answer(await ImagesService(state).variation(form, public_base_url(request, state.settings)))
