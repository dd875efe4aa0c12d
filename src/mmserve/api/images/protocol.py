"""Pydantic models of the Images API: OpenAI's fields plus the diffusers extensions.

Dialects and extensions accepted here (listed in docs/api.md):
- DO (seeds/000): the same JSON body as OpenAI with ``quality``, ``background`` and
  ``output_format`` set explicitly; its response shape (``data[].b64_json``, ``usage``) is ours.
- ``output_format: "jpg"`` is read as ``"jpeg"``.
- diffusers extensions: ``negative_prompt``, ``seed``, ``steps`` (alias ``num_inference_steps``),
  ``guidance_scale``, and for edits ``strength``.
- ``null`` for an optional field means "the default", as clients that serialise every field send it.
- Edits as JSON (the current OpenAI API): ``images: [{"image_url": ...}]`` and ``mask: {"image_url": ...}``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, field_validator

from mmserve.api.jsonbody import SEED_MAX, RequestModel
from mmserve.api.openapi import IMAGE_URL_PATTERN, NOT_BLANK, schema_is

MAX_PROMPT_CHARS = 32000  # OpenAI's limit for its newest image models

Quality = Literal["auto", "low", "medium", "high", "standard", "hd"]
ResponseFormat = Literal["url", "b64_json"]
OutputFormat = Literal["png", "jpeg", "webp"]
Background = Literal["auto", "opaque", "transparent"]


# What the service refuses across fields, in the JSON Schema too (the OpenAPI is truthful): a
# transparent background only in a format with alpha
_REQUEST_RULES: dict[str, Any] = {
    "anyOf": [
        {"not": {"required": ["background"], "properties": {"background": {"const": "transparent"}}}},
        {"not": {"required": ["output_format"], "properties": {"output_format": {"const": "jpeg"}}}},
    ]
}


class _ImageRequest(RequestModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, json_schema_extra=_REQUEST_RULES)

    prompt: str = Field(max_length=MAX_PROMPT_CHARS, json_schema_extra={"pattern": NOT_BLANK})
    model: str | None = Field(default=None, min_length=1, description="None: the first image model of the catalog.")
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = None
    quality: Quality | None = None
    response_format: ResponseFormat | None = None
    output_format: OutputFormat | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    background: Background | None = None
    user: str | None = None
    stream: bool | None = None
    partial_images: int | None = Field(default=None, ge=0, le=3, description="Previews streamed before the image.")
    # diffusers extensions
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)
    steps: int | None = Field(default=None, ge=1, validation_alias=AliasChoices("steps", "num_inference_steps"))
    guidance_scale: float | None = Field(default=None, ge=0, le=100)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        if not re.search(NOT_BLANK, v):
            raise ValueError("the prompt is empty; describe the image to make")
        return v

    @field_validator("output_format", mode="before")
    @classmethod
    def _jpg(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().lower()
            return "jpeg" if v == "jpg" else v
        return v


class ImageGenerationRequest(_ImageRequest):
    style: Literal["vivid", "natural"] | None = None  # DALL-E 3's; diffusion models have no such switch: accepted
    moderation: Literal["auto", "low"] | None = None  # gpt-image's; accepted, no moderation model runs here


class ImageEditRequest(_ImageRequest):
    """The text fields of the multipart edit form (files are read separately)."""

    strength: float | None = Field(default=None, gt=0, le=1, description="How far from the input to go (diffusers).")
    input_fidelity: Literal["high", "low"] | None = None  # gpt-image's; accepted


class ImageInput(RequestModel):
    """An input image of a JSON edit: ``{"image_url": "https://... | data:image/...;base64,..."}`` (or a file id)."""

    # no Files API: image_url is required and file_id refused (what sources.py checks, stated)
    model_config = ConfigDict(extra="forbid", json_schema_extra={"required": ["image_url"]})

    image_url: str | None = Field(
        default=None,
        json_schema_extra=schema_is(
            {"type": "string", "pattern": IMAGE_URL_PATTERN, "description": "An http(s) URL or a data URI."}
        ),
    )
    file_id: str | None = Field(
        default=None, json_schema_extra=schema_is({"type": "null", "description": "No Files API: refused."})
    )


class ImageEditJSONRequest(ImageEditRequest):
    """``POST /v1/images/edits`` with a JSON body, as the current OpenAI API takes it."""

    images: list[ImageInput] = Field(min_length=1, description="The image(s) to edit.")
    mask: ImageInput | None = None

    @field_validator("images", mode="before")
    @classmethod
    def _one_image(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v


class ImageVariationRequest(RequestModel):
    """The text fields of ``POST /v1/images/variations`` (multipart; the image is a file part)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    model: str | None = Field(default=None, min_length=1)
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = None
    response_format: ResponseFormat | None = None
    output_format: OutputFormat | None = None
    user: str | None = None
    # diffusers extensions
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)
    steps: int | None = Field(default=None, ge=1, validation_alias=AliasChoices("steps", "num_inference_steps"))
    guidance_scale: float | None = Field(default=None, ge=0, le=100)
    strength: float | None = Field(default=None, gt=0, le=1, description="How far from the input to go.")

    def as_edit(self) -> ImageEditRequest:
        """The same request as an edit with an empty prompt (image-to-image, unconditioned)."""
        return ImageEditRequest.model_construct(prompt="", **self.model_dump(exclude_none=True))


def edit_body_schema() -> dict[str, Any]:
    """The OpenAPI request body of edits: the multipart form (files), or JSON with image URLs."""
    json_schema = _inline_defs(ImageEditJSONRequest.model_json_schema())
    return {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": edit_form_schema()},
            "application/json": {"schema": json_schema},
        },
    }


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its ``$defs`` written in place (an OpenAPI body's ``#/$defs/...`` would point nowhere)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


def variation_form_schema() -> dict[str, Any]:
    schema = ImageVariationRequest.model_json_schema()
    schema["properties"] = {"image": {"type": "string", "format": "binary"}, **schema["properties"]}
    schema["required"] = ["image"]
    return schema


def edit_form_schema() -> dict[str, Any]:
    """The OpenAPI schema of the multipart edit form (the text fields plus the files)."""
    schema = ImageEditRequest.model_json_schema()
    binary = {"type": "string", "format": "binary"}
    schema["properties"] = {
        "image": {
            "anyOf": [binary, {"type": "array", "items": binary, "minItems": 1}],
            "description": "Also sent as 'image[]'.",
        },
        "mask": {**binary, "description": "Transparent pixels (alpha 0) are repainted; or white = repaint."},
        **schema["properties"],
    }
    schema["required"] = ["image", "prompt"]
    return schema
