"""Pydantic models of the chat endpoint: OpenAI's shapes plus the seeds' dialects.

Dialects accepted here (see docs/dialects.md):
- ``maximum_tokens`` (Pharia / aleph-alpha-client) is an alias of ``max_tokens``.
- ``image_url`` may be a bare string instead of ``{"url": ...}`` (several open clients send it).
- ``developer`` messages are treated as ``system``.
- ``video_url`` parts (vLLM's shape, ``{"video_url": {"url": ...}}``) carry a video; ``input_audio``
  parts (OpenAI's, ``{"input_audio": {"data": <base64>, "format": "wav"|"mp3"}}``) carry audio.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from mmserve.api.jsonbody import SEED_MAX, RequestModel
from mmserve.api.openapi import IMAGE_URL_PATTERN, schema_is, schema_with
from mmserve.api.unicode import refuse_lone_surrogates

# apply_chat_template's own arguments (tokenizer's and processor's, and the jinja renderer's
# they call, "self" included), and a processor's inputs: not template variables. Passed on,
# such a name collides with the call (a TypeError) or changes what the server set.
# tests/api/test_chat_features.py checks this list against transformers' signatures.
RESERVED_TEMPLATE_KWARGS = frozenset(
    [
        "self",
        "conversation",
        "conversations",
        "sanitize_control_tokens",
        "load_audio_from_video",
        "messages",
        "tools",
        "documents",
        "chat_template",
        "add_generation_prompt",
        "continue_final_message",
        "tokenize",
        "padding",
        "truncation",
        "max_length",
        "return_tensors",
        "return_dict",
        "return_assistant_tokens_mask",
        "tokenizer_kwargs",
        "processor_kwargs",
        "images",
        "videos",
        "audio",
        "audios",
        "text",
        "kwargs",
    ]
)
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


class _Model(RequestModel):
    model_config = ConfigDict(extra="ignore")


class ImageURL(_Model):
    url: str = Field(
        description="An http(s) URL or a data URI ('data:image/png;base64,...').",
        json_schema_extra={"pattern": IMAGE_URL_PATTERN},
    )
    detail: Literal["auto", "low", "high"] = "auto"


class TextPart(_Model):
    type: Literal["text"]
    text: str


class ImagePart(_Model):
    type: Literal["image_url"]
    image_url: ImageURL

    @field_validator("image_url", mode="before")
    @classmethod
    def _bare_string(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v


class VideoURL(_Model):
    url: str = Field(
        description="An http(s) URL or a data URI ('data:video/mp4;base64,...').",
        json_schema_extra={"pattern": IMAGE_URL_PATTERN},  # the same two forms as an image's
    )


class VideoPart(_Model):
    type: Literal["video_url"]
    video_url: VideoURL

    @field_validator("video_url", mode="before")
    @classmethod
    def _bare_string(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v


class InputAudio(_Model):
    data: str = Field(description="Base64 audio (no data: prefix needed; one is accepted).")
    format: Literal["wav", "mp3"]


class AudioPart(_Model):
    type: Literal["input_audio"]
    input_audio: InputAudio


PART_TYPES = ("text", "image_url", "video_url", "input_audio")


def _known_part(v: Any) -> Any:
    """Name an unsupported part type and the supported ones (instead of a union's tag error)."""
    if isinstance(v, dict):
        kind = v.get("type")
        if kind is None:
            raise ValueError(f"a content part needs a 'type', one of: {', '.join(PART_TYPES)}")
        if kind not in PART_TYPES:
            shown = repr(kind)[:64]
            raise ValueError(
                f"content part type {shown} is not supported in chat completions; supported part types: "
                f"{', '.join(PART_TYPES)}"
            )
    return v


ContentPart = Annotated[
    TextPart | ImagePart | VideoPart | AudioPart, Field(discriminator="type"), BeforeValidator(_known_part)
]


class ToolCallFunction(_Model):
    name: str
    arguments: str = ""


class ToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


def _message_rules(schema: dict[str, Any]) -> None:
    """The rules ``Message._content_required`` checks, in the JSON Schema too (the OpenAPI is truthful)."""
    content = {"anyOf": [{"type": "string"}, {"type": "array"}]}  # present and not null
    schema["anyOf"] = [
        {"properties": {"role": {"enum": ["system", "developer", "user", "assistant"]}, "content": content}},
        {"properties": {"role": {"const": "assistant"}, "tool_calls": {"type": "array", "minItems": 1}}},
        {
            "properties": {
                "role": {"const": "tool"},
                "content": content,
                "tool_call_id": {"type": "string", "minLength": 1},
            }
        },
    ]
    for rule, required in zip(schema["anyOf"], (["content"], ["tool_calls"], ["content", "tool_call_id"]), strict=True):
        rule["required"] = ["role", *required]


class Message(_Model):
    model_config = ConfigDict(extra="ignore", json_schema_extra=_message_rules)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None

    @model_validator(mode="after")
    def _content_required(self) -> Message:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs 'content'")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs 'tool_call_id'")
        return self


StopString = Annotated[str, Field(min_length=1)]  # an empty one would stop before anything
Stop = StopString | list[StopString] | None


class StreamOptions(_Model):
    include_usage: bool = False


# JSON Schemas of the fields checked by hand in features.py (their runtime type stays loose so
# that the checks there can name the exact field): the OpenAPI states the same rules.
TOOL_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"
TEMPLATE_KWARG_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_NAMED_FUNCTION = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
    },
}
TOOL_SCHEMA = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": TOOL_NAME},
                "description": {"type": ["string", "null"]},
                "parameters": {"type": ["object", "null"], "description": "A JSON Schema."},
                "strict": {"type": ["boolean", "null"]},
            },
        },
    },
}
TOOL_CHOICE_SCHEMA = {"anyOf": [{"enum": ["none", "auto", "required", None]}, _NAMED_FUNCTION]}
RESPONSE_FORMAT_SCHEMA = {
    "anyOf": [
        {"type": "null"},
        {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["text", "json_object"]}}},
        {
            "type": "object",
            "required": ["type", "json_schema"],
            "properties": {
                "type": {"const": "json_schema"},
                "json_schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "schema": {"type": "object", "description": "A JSON Schema."},
                        "strict": {"type": ["boolean", "null"]},
                    },
                },
            },
        },
    ]
}


def template_kwargs_schema(reserved: frozenset[str]) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "null"},
            {
                "type": "object",
                "propertyNames": {"pattern": TEMPLATE_KWARG_NAME, "not": {"enum": sorted(reserved)}},
                "properties": {"enable_thinking": {"type": "boolean"}},
            },
        ],
        "description": "vLLM / SGLang: variables for the chat template, e.g. {'enable_thinking': false}.",
    }


# What the server refuses across fields, in the JSON Schema too (the OpenAPI is truthful):
# - top_logprobs only with logprobs true (prepare.check_params);
# - no ignore_eos with an enforced output format, which ends the answer itself: a JSON response_format,
#   or a tool_choice that forces a call (ChatEngine.check_request)
_ENFORCED_FORMAT: dict[str, Any] = {
    "anyOf": [
        {
            "required": ["response_format"],
            "properties": {
                "response_format": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"enum": ["json_object", "json_schema"]}},
                }
            },
        },
        {
            "required": ["tool_choice"],
            "properties": {"tool_choice": {"anyOf": [{"const": "required"}, {"type": "object"}]}},
        },
    ]
}
_REQUEST_RULES: dict[str, Any] = {
    "allOf": [
        {
            "anyOf": [
                {"not": {"required": ["top_logprobs"]}},
                {"properties": {"top_logprobs": {"type": "null"}}},
                {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}},
            ]
        },
        {
            "not": {
                "required": ["ignore_eos"],
                "properties": {"ignore_eos": {"const": True}},
                **_ENFORCED_FORMAT,
            }
        },
    ]
}


class ChatCompletionRequest(_Model):
    model_config = ConfigDict(extra="ignore", json_schema_extra=_REQUEST_RULES)

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    maximum_tokens: int | None = Field(default=None, ge=1, description="Pharia alias of max_tokens.")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=128)
    stop: Stop = None
    seed: int | None = Field(default=None, ge=-(2**63), le=SEED_MAX)
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    tools: list[dict[str, Any]] | None = Field(default=None, json_schema_extra=schema_with({"items": TOOL_SCHEMA}))
    tool_choice: Any = Field(default=None, json_schema_extra=schema_is(TOOL_CHOICE_SCHEMA))
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = Field(default=None, json_schema_extra=schema_is(RESPONSE_FORMAT_SCHEMA))
    reasoning_effort: str | None = Field(default=None, json_schema_extra={"enum": [*REASONING_EFFORTS, None]})
    user: str | None = None
    logprobs: bool | None = Field(default=None, description="Return each output token's log-probability.")
    top_logprobs: int | None = Field(
        default=None, ge=0, le=20, description="With logprobs: the most likely tokens at each position (0-20)."
    )
    ignore_eos: bool = Field(
        default=False, description="vLLM: keep generating past the end-of-sequence token, up to max_tokens."
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        default=None, json_schema_extra=schema_is(template_kwargs_schema(RESERVED_TEMPLATE_KWARGS))
    )

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        refuse_lone_surrogates(data)  # raised as is (not a ValueError): a 400 naming the exact field
        return data

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens or self.maximum_tokens

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)
