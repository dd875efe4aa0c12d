"""POST /v1/images/generations (JSON) and POST /v1/images/edits (multipart)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from mmserve.api.images.multipart import read_edit_form
from mmserve.api.images.protocol import ImageGenerationRequest, edit_form_schema
from mmserve.api.images.service import ImagesService
from mmserve.api.openapi import MODEL, errors
from mmserve.api.state import AppState, get_state
from mmserve.storage.signing import public_base_url

router = APIRouter(tags=["images"])


@router.post("/v1/images/generations", responses=errors(*MODEL))
async def images_generations(
    req: ImageGenerationRequest, request: Request, state: AppState = Depends(get_state)
) -> dict[str, Any]:
    base_url = public_base_url(request, state.settings)
    result = await ImagesService(state).generate(req, base_url)
    return result.body


@router.post(
    "/v1/images/edits",
    responses=errors(*MODEL, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": edit_form_schema()}},
        }
    },
)
async def images_edits(request: Request, state: AppState = Depends(get_state)) -> dict[str, Any]:
    form = await read_edit_form(request, state.settings.limits)
    base_url = public_base_url(request, state.settings)
    result = await ImagesService(state).edit(form, base_url)
    return result.body
