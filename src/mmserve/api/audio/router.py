"""POST /v1/audio/speech, /v1/audio/transcriptions, /v1/audio/translations (and /transcribe, Pharia)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from mmserve.api.audio.speech_protocol import SpeechRequest, wants_json
from mmserve.api.audio.speech_service import SpeechService
from mmserve.api.audio.transcription_protocol import openapi_form, read_upload
from mmserve.api.audio.transcription_service import Task, TranscriptionService
from mmserve.api.state import AppState, get_state
from mmserve.api.streaming import ReleasingEventSourceResponse, ReleasingStreamingResponse
from mmserve.media.audio.encode import CONTENT_TYPES

router = APIRouter(tags=["audio"])


@router.post("/v1/audio/speech")
async def speech(req: SpeechRequest, request: Request, state: AppState = Depends(get_state)) -> Any:
    service = SpeechService(state)
    stream = await service.start(req)
    if req.stream_format == "sse":
        return ReleasingEventSourceResponse(service.stream(stream, service.sse(stream)), sep="\n", ping=15)
    if wants_json(request.headers.get("accept")):
        return await service.envelope(stream)
    audio = service.stream(stream, service.audio(stream))
    return ReleasingStreamingResponse(audio, media_type=CONTENT_TYPES[req.response_format])


@router.post("/v1/audio/transcriptions", openapi_extra=openapi_form())
@router.post("/transcribe", include_in_schema=False)
async def transcriptions(request: Request, state: AppState = Depends(get_state)) -> Response:
    return await _transcribe(request, state, "transcribe")


@router.post("/v1/audio/translations", openapi_extra=openapi_form())
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
