"""Pydantic models of POST /v1/responses (OpenAI's Responses API), as far as mmserve serves it.

Input items: messages (``input_text``, ``input_image``, ``input_file`` parts; assistant
messages' ``output_text`` as a previous answer), ``function_call``, ``function_call_output`` and
``reasoning`` items. Tools are function tools. Fields mmserve cannot honour are refused by the
service with a 400 naming them, never ignored silently.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from mmserve.api.chat.protocol import REASONING_EFFORTS
from mmserve.api.errors import validation_error
from mmserve.api.jsonbody import SEED_MAX, RequestModel
from mmserve.api.openapi import HTTP_URL_PATTERN, IMAGE_URL_PATTERN, schema_is
from mmserve.api.unicode import refuse_lone_surrogates

MAX_METADATA_KEYS = 16
LOGPROBS = "message.output_text.logprobs"


class _Model(RequestModel):
    model_config = ConfigDict(extra="ignore")


def _given(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"type": "string"}}}


# What the conversion to chat takes (convert._tool_choice, then chat's checks): the schema says so.
TOOL_CHOICE_SCHEMA = {
    "anyOf": [
        {"enum": ["none", "auto", "required", None]},
        {
            "type": "object",
            "required": ["type", "name"],
            "properties": {"type": {"const": "function"}, "name": {"type": "string"}},
        },
    ]
}
NO_FILES = schema_is({"type": "null", "description": "No Files API: refused."})


class InputText(_Model):
    type: Literal["input_text"]
    text: str


class InputImage(_Model):
    # no Files API: image_url is required and file_id refused (the schema says what convert.py checks)
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["type", "image_url"]})

    type: Literal["input_image"]
    image_url: str | None = Field(
        default=None,
        json_schema_extra=schema_is(
            {"type": "string", "pattern": IMAGE_URL_PATTERN, "description": "An http(s) URL or a data URI."}
        ),
    )
    file_id: str | None = Field(default=None, json_schema_extra=NO_FILES)
    detail: Literal["auto", "low", "high", "original"] = "auto"


class InputFile(_Model):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"anyOf": [_given("file_data"), _given("file_url")]})

    type: Literal["input_file"]
    file_data: str | None = Field(default=None, description="A data URI (or bare base64) of a text file.")
    file_url: str | None = Field(
        default=None,
        json_schema_extra=schema_is(
            {
                "anyOf": [{"type": "string", "pattern": HTTP_URL_PATTERN}, {"type": "null"}],
                "description": "An http(s) URL (mmserve fetches it).",
            }
        ),
    )
    file_id: str | None = Field(default=None, json_schema_extra=NO_FILES)
    filename: str | None = None


class OutputText(_Model):
    type: Literal["output_text"]
    text: str


class Refusal(_Model):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[InputText | InputImage | InputFile | OutputText | Refusal, Field(discriminator="type")]


class MessageItem(_Model):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None


class FunctionCallItem(_Model):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None


class FunctionCallOutputItem(_Model):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[ContentPart]
    id: str | None = None


class SummaryText(_Model):
    type: Literal["summary_text"] = "summary_text"
    text: str


class ReasoningText(_Model):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class ReasoningItem(_Model):
    type: Literal["reasoning"]
    id: str | None = None
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None


class ItemReference(_Model):
    # read so that the refusal names it (convert.py); the schema admits none
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"not": {}, "description": "Not supported: use previous_response_id."}
    )

    type: Literal["item_reference"]
    id: str


def _item_kind(v: Any) -> str | None:
    if isinstance(v, dict):
        return str(v.get("type") or "message")
    return getattr(v, "type", None)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")],
    Discriminator(
        _item_kind,
        custom_error_type="invalid_input_item",
        custom_error_message="an input item is a message ({role, content}), function_call, function_call_output "
        "or reasoning item",
    ),
]


def _untagged(loc: tuple[Any, ...], value: Any) -> list[Any]:
    """``(0, "message", "content", 0)`` -> ``[0, "content", 0]``: drop each tag that names the item it follows."""
    out: list[Any] = []
    for part in loc:
        listed = isinstance(part, int) and isinstance(value, list) and 0 <= part < len(value)
        if listed or (isinstance(value, dict) and part in value):
            value = value[part]
        elif isinstance(value, dict) and part == (value.get("type") or "message"):
            continue  # the discriminator's tag
        out.append(part)
    return out


# What convert.py refuses, in the JSON Schema too (the OpenAPI is truthful): a json_schema format
# without its schema (an object)
_FORMAT_RULES: dict[str, Any] = {
    "anyOf": [
        {"properties": {"type": {"enum": ["text", "json_object"]}}},
        {
            "required": ["type", "schema"],
            "properties": {"type": {"const": "json_schema"}, "schema": {"type": "object"}},
        },
    ]
}


class TextFormat(_Model):
    model_config = ConfigDict(extra="ignore", json_schema_extra=_FORMAT_RULES)

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(_Model):
    format: TextFormat = Field(default_factory=TextFormat)
    verbosity: Literal["low", "medium", "high"] | None = Field(
        default=None, json_schema_extra={"enum": ["medium", None]}, description="Other values are refused."
    )


class ReasoningConfig(_Model):
    # checked where chat checks reasoning_effort (a 400 naming reasoning.effort); listed here for the schema
    effort: str | None = Field(default=None, json_schema_extra={"enum": [*REASONING_EFFORTS, None]})
    summary: Literal["auto", "concise", "detailed"] | None = None


#: what the service checks (convert.py): input to answer, or a stored response to continue
_NEEDS_INPUT: dict[str, Any] = {
    "anyOf": [
        {
            "required": ["input"],
            "properties": {"input": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1}]}},
        },
        {"required": ["previous_response_id"], "properties": {"previous_response_id": {"type": "string"}}},
    ]
}


class ResponseRequest(_Model):
    model_config = ConfigDict(extra="ignore", json_schema_extra=_NEEDS_INPUT)

    model: str = Field(min_length=1)
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = Field(default=None, json_schema_extra=schema_is(TOOL_CHOICE_SCHEMA))
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, str] | None = None
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = Field(
        default=None, json_schema_extra={"enum": ["disabled", None]}, description="'auto' is refused."
    )
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # refused by design unless left out (a 400 naming them): the schema says so
    background: bool | None = Field(default=None, json_schema_extra={"enum": [False, None]})
    conversation: Any = Field(default=None, json_schema_extra={"type": "null"})
    prompt: Any = Field(default=None, json_schema_extra={"type": "null"})
    seed: int | None = Field(default=None, ge=-(2**63), le=SEED_MAX, description="mmserve extension.")
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        refuse_lone_surrogates(data)  # raised as is (not a ValueError): a 400 naming the exact field
        return data

    @property
    def wants_logprobs(self) -> bool:
        """``include: ["message.output_text.logprobs"]`` (OpenAI's switch), or ``top_logprobs`` alone."""
        return bool(self.include and LOGPROBS in self.include) or self.top_logprobs is not None

    @field_validator("input", mode="wrap")
    @classmethod
    def _input(cls, v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(v)
        except ValidationError as e:  # name the item's fields, without the union tags pydantic puts in locations
            errors = [{**err, "loc": ("input", *_untagged(err["loc"], v))} for err in e.errors()]
            raise validation_error(errors) from None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None:
            if len(v) > MAX_METADATA_KEYS:
                raise ValueError(f"metadata holds at most {MAX_METADATA_KEYS} keys")
            if any(len(k) > 64 or len(s) > 512 for k, s in v.items()):
                raise ValueError("metadata keys are at most 64 characters and values at most 512")
        return v
