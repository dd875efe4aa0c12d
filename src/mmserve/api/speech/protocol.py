"""Pydantic model of ``POST /v1/audio/speech``: OpenAI's fields plus the seeds' dialects.

Dialects accepted here (listed in docs/api.md):
- ``voice`` may be a name or ``{"id": ...}`` (OpenAI's custom-voice object).
- DigitalOcean: a client sending ``Accept: application/json`` gets ``{"data": [{"b64_json"}]}``
  (see :func:`wants_json`); with ``speech_envelope: always`` (setting or card) every client does,
  as DO answers its own curl example (no Accept header); ``never`` turns the dialect off.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from mmserve.api.jsonbody import RequestModel
from mmserve.api.openapi import NOT_BLANK, schema_is

SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


VOICE_NAME: dict[str, Any] = {"type": "string", "pattern": NOT_BLANK, "maxLength": 128}
VOICE_OBJECT: dict[str, Any] = {"type": "object", "required": ["id"]}


class _Model(RequestModel):
    model_config = ConfigDict(extra="ignore")


class SpeechRequest(_Model):
    model: str
    input: str = Field(json_schema_extra={"pattern": NOT_BLANK}, description="The text to speak.")
    voice: str = Field(
        max_length=128,
        description="A voice name, or OpenAI's {'id': ...} object.",
        json_schema_extra=schema_is({"anyOf": [VOICE_NAME, {**VOICE_OBJECT, "properties": {"id": VOICE_NAME}}]}),
    )
    instructions: str | None = Field(default=None, max_length=4096)
    response_format: SpeechFormat = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"

    @field_validator("voice", mode="before")
    @classmethod
    def _voice_object(cls, v: Any) -> Any:
        if isinstance(v, dict):
            if not isinstance(v.get("id"), str):
                raise ValueError('a voice object must look like {"id": "alloy"}')
            return v["id"]
        return v


def use_envelope(mode: str, accept: str | None) -> bool:
    """Whether to answer in DO's JSON envelope: the operator's ``speech_envelope`` mode for this card."""
    if mode == "always":
        return True
    return mode == "on_accept_json" and wants_json(accept)


def wants_json(accept: str | None) -> bool:
    """True when the client asks for JSON and not for audio (``Accept: application/json``)."""
    if not accept:
        return False
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    audio = any(t.startswith("audio/") or t == "application/octet-stream" for t in types)
    return "application/json" in types and not audio
