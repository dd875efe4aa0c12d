"""The create-video request (OpenAI Videos API plus DO's ``fps``), read from JSON or multipart.

The official SDK always posts multipart/form-data: scalar fields as form fields, an
``input_reference`` upload as a file part, and ``input_reference={"image_url": ...}`` as the
field ``input_reference[image_url]``. Plain JSON bodies (curl, DO's example) carry the same
fields, with ``input_reference`` as ``{"image_url": "..."}``.

Dialects accepted here:
- DO: ``fps`` (frames per second of the clip) on create.
- ``seconds`` as a number as well as OpenAI's string (``4`` or ``"4"``).
- ``input_reference`` as a bare URL / data-URI string (same as ``{"image_url": ...}``).
- mmserve extensions: ``seed`` (reproducible clips), ``negative_prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mmserve.api.errors import validation_error
from mmserve.api.forms import form_error
from mmserve.api.jsonbody import FORM, SEED_MAX, RequestModel
from mmserve.api.jsonerrors import loads
from mmserve.api.openapi import IMAGE_URL_PATTERN
from mmserve.errors import InvalidRequestError, PayloadTooLargeError, clip

MAX_PROMPT_CHARS = 10_000
FORM_LIMITS = {"max_files": 1, "max_fields": 64, "max_part_size": 64 * 1024}  # the prompt: 10000 chars


class ImageReference(RequestModel):
    model_config = ConfigDict(extra="forbid")
    image_url: str | None = None
    file_id: str | None = None


class VideoCreateRequest(RequestModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(default=None, min_length=1)
    seconds: str | float | None = None
    size: str | None = None
    fps: int | None = Field(default=None, ge=1, le=240)
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    input_reference: ImageReference | None = None

    @field_validator("input_reference", mode="before")
    @classmethod
    def _bare_url(cls, v: Any) -> Any:
        return {"image_url": v} if isinstance(v, str) else v


class VideoRemixRequest(RequestModel):
    """``POST /v1/videos/{id}/remix``: the new prompt (everything else comes from the source video)."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)


def openapi_body() -> dict[str, Any]:
    """The create body for the OpenAPI document: JSON, or multipart with ``input_reference`` as a file."""
    schema = VideoCreateRequest.model_json_schema()
    reference = schema.pop("$defs")["ImageReference"]
    props = schema["properties"]
    url = {"type": "string", "pattern": IMAGE_URL_PATTERN, "description": "An http(s) URL or a data URI."}
    reference = {  # file_id is refused (uploads are sent as the file itself)
        **reference,
        "required": ["image_url"],
        "properties": {"image_url": url},
    }
    json_body = {**schema, "properties": {**props, "input_reference": {"anyOf": [url, reference]}}}
    form = {**schema, "properties": {**props, "input_reference": {"type": "string", "format": "binary"}}}
    content = {"application/json": {"schema": json_body}, "multipart/form-data": {"schema": form}}
    return {"requestBody": {"required": True, "content": content}}


@dataclass
class CreateInput:
    body: VideoCreateRequest
    upload: bytes | None = None  # input_reference sent as a file


async def read_create_request(request: Request, *, max_file_bytes: int) -> CreateInput:
    content_type = request.headers.get("content-type", "").lower()
    upload: bytes | None = None
    context = None
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raw, upload = await _read_form(request, max_file_bytes)
        context = FORM  # text fields
    else:
        raw = _json_object(await request.body())
    try:
        body = VideoCreateRequest.model_validate(raw, context=context)
    except ValidationError as e:
        raise validation_error(e.errors()) from None
    if upload is not None and body.input_reference is not None:
        raise InvalidRequestError(
            "Send input_reference either as a file or as {image_url}, not both.", param="input_reference"
        )
    return CreateInput(body, upload)


async def _read_form(request: Request, max_file_bytes: int) -> tuple[dict[str, Any], bytes | None]:
    try:
        form = await request.form(**FORM_LIMITS)
    except HTTPException as e:
        if e.status_code != 400:  # the body cap (413): shaped by the app's handlers
            raise
        raise form_error(
            str(e.detail),
            files="at most one input_reference file",
            file_param="input_reference",
            max_fields=FORM_LIMITS["max_fields"],
            max_field_bytes=FORM_LIMITS["max_part_size"],
        ) from None
    raw: dict[str, Any] = {}
    upload: bytes | None = None
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "input_reference":
                    raise InvalidRequestError(f"Unexpected file field '{clip(key)}'.", param=key)
                if value.size is not None and value.size > max_file_bytes:
                    raise PayloadTooLargeError(
                        f"The input_reference file is larger than {max_file_bytes} bytes.", param="input_reference"
                    )
                upload = await value.read(max_file_bytes + 1)
                if len(upload) > max_file_bytes:
                    raise PayloadTooLargeError(
                        f"The input_reference file is larger than {max_file_bytes} bytes.", param="input_reference"
                    )
            elif key.startswith("input_reference[") and key.endswith("]"):
                if not isinstance(raw.setdefault("input_reference", {}), dict):
                    raise InvalidRequestError("input_reference is given twice.", param="input_reference")
                raw["input_reference"][key[len("input_reference[") : -1]] = value
            elif key == "input_reference" and "input_reference" in raw:
                raise InvalidRequestError("input_reference is given twice.", param="input_reference")
            else:
                raw[key] = value
    finally:
        await form.close()
    return raw, upload


def _json_object(data: bytes) -> dict[str, Any]:
    raw = loads(data)  # a 400 naming the line and column of a syntax error
    if not isinstance(raw, dict):
        raise InvalidRequestError("The request body must be a JSON object with at least 'prompt'.", param="prompt")
    return raw
