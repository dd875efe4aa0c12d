"""The multipart form of ``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``, read with bounds.

The body is read through a byte counter: a declared or streamed body beyond the audio upload
cap (plus room for the form fields) is refused with a 413 while it arrives, before anything is
decoded. The file part is spooled by Starlette (1 MiB in memory, the rest on disk), so even
the largest allowed upload does not sit in memory twice.

Dialects accepted here (listed in docs/api.md): ``timestamp_granularities[]`` (the SDKs'
spelling) or ``timestamp_granularities``; OpenAI fields mmserve has no use for
(``include[]``, ``chunking_strategy``, ``known_speaker_*``) are accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from pydantic import ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Message

from mmserve.api.errors import validation_error
from mmserve.api.forms import form_error
from mmserve.api.jsonbody import FORM, RequestModel
from mmserve.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError
from mmserve.settings import AudioSettings

TranscriptFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
FORM_OVERHEAD = 1024 * 1024  # room for the boundaries and the text fields
MAX_FIELD_BYTES = 64 * 1024


class TranscriptionForm(RequestModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    language: str | None = Field(default=None, max_length=32)
    prompt: str | None = Field(default=None, max_length=8192)
    response_format: TranscriptFormat = "json"
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)
    timestamp_granularities: list[Literal["word", "segment"]] = Field(default_factory=list)
    stream: bool = False


def openapi_form() -> dict[str, Any]:
    """The multipart body for the OpenAPI document (the route reads the form itself, with bounds)."""
    schema = TranscriptionForm.model_json_schema()
    props = {"file": {"type": "string", "format": "binary", "description": "The recording."}}
    props.update(schema["properties"])
    props["timestamp_granularities[]"] = props.pop("timestamp_granularities")
    body = {"type": "object", "properties": props, "required": ["file", "model"]}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}}}


@dataclass
class TranscriptionUpload:
    form: TranscriptionForm
    data: bytes
    filename: str | None


async def read_upload(request: Request, limits: AudioSettings) -> TranscriptionUpload:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaError(
            "Send the audio as multipart/form-data with the recording in a 'file' field.", param="file"
        )
    cap = limits.max_upload_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _too_large(limits)
    received = 0

    async def bounded_receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > cap:
            raise _too_large(limits)
        return message

    bounded = Request(request.scope, bounded_receive)
    try:
        form = await bounded.form(max_files=1, max_fields=limits.max_form_fields, max_part_size=MAX_FIELD_BYTES)
    except HTTPException as e:  # Starlette's MultiPartException, with its own wording
        raise form_error(
            str(e.detail),
            files="one recording as 'file'",
            file_param="file",
            max_fields=limits.max_form_fields,
            max_field_bytes=MAX_FIELD_BYTES,
        ) from None
    try:
        upload = form.get("file")
        if upload is None:
            raise InvalidRequestError("'file' is required: attach the recording as a file.", param="file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError("'file' must be a file upload, not a text field.", param="file")
        if upload.size is not None and upload.size > limits.max_upload_bytes:
            raise _too_large(limits)
        fields: dict[str, Any] = {k: v for k, v in form.multi_items() if isinstance(v, str) and v != ""}
        fields["timestamp_granularities"] = [
            v for key in ("timestamp_granularities[]", "timestamp_granularities") for v in form.getlist(key) if v
        ]
        try:
            parsed = TranscriptionForm.model_validate(fields, context=FORM)
        except ValidationError as e:
            raise validation_error(e.errors()) from None
        data = await upload.read()
        if len(data) > limits.max_upload_bytes:
            raise _too_large(limits)
        return TranscriptionUpload(parsed, data, upload.filename)
    finally:
        await form.close()


def _too_large(limits: AudioSettings) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The audio file is larger than the {limits.max_upload_bytes // (1024 * 1024)} MiB upload limit. "
        "Send a shorter or more compressed recording.",
        param="file",
        code="audio_too_large",
    )
