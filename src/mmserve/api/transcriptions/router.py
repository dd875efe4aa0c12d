"""POST /v1/audio/transcriptions and /v1/audio/translations (and /transcribe, Pharia's path)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from mmserve.api.openapi import MODEL, errors
from mmserve.api.state import AppState, get_state
from mmserve.api.streaming import ReleasingEventSourceResponse
from mmserve.api.transcriptions.protocol import openapi_form, read_upload
from mmserve.api.transcriptions.service import Task, TranscriptionService
from mmserve.api.transcriptions.transcripts import CONTENT_TYPES

router = APIRouter(tags=["audio"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {ct: {} for ct in ("application/json", *CONTENT_TYPES.values(), "text/event-stream")},
        "description": "The transcript in response_format, or SSE events (stream)",
    },
    **errors(*MODEL, 415),
}


@router.post("/v1/audio/transcriptions", openapi_extra=openapi_form(), responses=RESPONSES)
@router.post("/transcribe", include_in_schema=False)
async def transcriptions(request: Request, state: AppState = Depends(get_state)) -> Response:
    return await _transcribe(request, state, "transcribe")


@router.post("/v1/audio/translations", openapi_extra=openapi_form(), responses=RESPONSES)
async def translations(request: Request, state: AppState = Depends(get_state)) -> Response:
    return await _transcribe(request, state, "translate")


async def _transcribe(request: Request, state: AppState, task: Task) -> Response:
    upload = await read_upload(request, state.settings.audio)
    service = TranscriptionService(state)
    if upload.form.stream:
        return ReleasingEventSourceResponse(await service.stream(upload, task), sep="\n", ping=15)
    out = await service.complete(upload, task)
    if isinstance(out.body, dict):
        return JSONResponse(out.body)
    return Response(out.body, media_type=out.content_type)
