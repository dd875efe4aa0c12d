"""POST /v1/audio/speech: text to speech, streamed as audio bytes, as SSE events, or in DO's JSON envelope."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from mmserve.api.openapi import MODEL, errors
from mmserve.api.speech.protocol import SpeechRequest, use_envelope
from mmserve.api.speech.service import SpeechService
from mmserve.api.state import AppState, get_state
from mmserve.api.streaming import ReleasingEventSourceResponse, ReleasingStreamingResponse
from mmserve.media.audio.encode import CONTENT_TYPES

router = APIRouter(tags=["audio"])


@router.post(
    "/v1/audio/speech",
    responses={
        200: {
            "content": {ct: {} for ct in (*CONTENT_TYPES.values(), "text/event-stream", "application/json")},
            "description": "The audio as it is encoded, SSE events (stream_format sse), or DO's JSON envelope",
        },
        **errors(*MODEL),
    },
)
async def speech(req: SpeechRequest, request: Request, state: AppState = Depends(get_state)) -> Any:
    service = SpeechService(state)
    stream = await service.start(req)
    if req.stream_format == "sse":
        return ReleasingEventSourceResponse(service.stream(stream, service.sse(stream)), sep="\n", ping=15)
    mode = stream.card.dialects.speech_envelope or state.settings.speech_envelope
    if use_envelope(mode, request.headers.get("accept")):
        return await service.envelope(stream)
    audio = service.stream(stream, service.audio(stream))
    return ReleasingStreamingResponse(audio, media_type=CONTENT_TYPES[req.response_format])
