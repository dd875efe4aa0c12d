"""Tools, tool_choice, response_format and reasoning switches: checked against the card, resolved for the engine.

Reasoning is switched, in this order of precedence, by ``chat_template_kwargs.enable_thinking``
(vLLM / SGLang), ``reasoning_effort`` (OpenAI: ``"none"`` is off, any other effort on) and a
``/think`` or ``/no_think`` in a system message (Qwen3's soft switch, as Pharia-style
deployments document it); the result reaches the chat template as ``enable_thinking``
(and ``reasoning_effort`` as itself), which templates that support thinking read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmserve.api.chat.protocol import (
    REASONING_EFFORTS,
    RESERVED_TEMPLATE_KWARGS,
    TEMPLATE_KWARG_NAME,
    TOOL_NAME,
    ChatCompletionRequest,
    Message,
)
from mmserve.api.chat.schemas import check_schema
from mmserve.api.errors import validation_error
from mmserve.cards import ModelCard
from mmserve.chatformat.grammar import OutputConstraint, ToolSpec
from mmserve.chatformat.output import OutputFormat
from mmserve.errors import InvalidRequestError, ModelCapabilityError, clip

_KWARG_NAME = re.compile(TEMPLATE_KWARG_NAME.strip("^$"))  # fullmatch: "$" would let "name\n" through
_SWITCH = re.compile(r"(?<!\S)/(no_think|think)(?!\S)")


class _Function(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _Tool(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: _Function


@dataclass
class ChatFeatures:
    tools: list[dict[str, Any]] | None = None  # what the chat template is given
    tool_choice: str = "none"  # none | auto | required | function:<name>
    reasoning: bool | None = None  # None: the template's default
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    constraint: OutputConstraint | None = None
    output: OutputFormat = field(default_factory=OutputFormat)


def resolve_features(req: ChatCompletionRequest, card: ModelCard, *, max_tools: int = 128) -> ChatFeatures:
    caps = card.capabilities
    if req.tools and len(req.tools) > max_tools:
        raise InvalidRequestError(f"At most {max_tools} tools are allowed.", param="tools")
    tools = _tools(req.tools)
    choice = _tool_choice(req.tool_choice, tools)
    if tools and choice != "none" and not caps.tool_call_format:
        raise ModelCapabilityError(
            f"The model '{card.id}' does not support tools (its card sets no capabilities.tool_call_format). "
            "Remove 'tools' or use a model that calls tools.",
            param="tools",
        )
    parallel = req.parallel_tool_calls is not False and not choice.startswith("function:")
    schema, strict = _response_format(req.response_format)
    kwargs = _template_kwargs(req.chat_template_kwargs)
    reasoning = _reasoning_switch(req)
    if reasoning is not None:
        kwargs.setdefault("enable_thinking", reasoning)
    if req.reasoning_effort is not None:
        kwargs.setdefault("reasoning_effort", req.reasoning_effort)
    offered = tools if choice != "none" else []
    names = [t.function.name for t in offered]
    reasoning_format = caps.reasoning_format if reasoning is not False else None
    constraint = None
    forced = choice == "required" or choice.startswith("function:")
    if forced or schema is not None:
        called = [t for t in offered if not choice.startswith("function:") or choice == f"function:{t.function.name}"]
        constraint = OutputConstraint(
            json_schema=schema,
            tools=tuple(ToolSpec(t.function.name, t.function.parameters or {"type": "object"}) for t in called),
            require_tool_call=forced,
            parallel_tool_calls=parallel,
            tool_call_format=caps.tool_call_format if called else None,
            reasoning_format=reasoning_format,
            strict=strict,
            param="response_format" if schema is not None and not forced else "tools",
        )
    return ChatFeatures(
        tools=[t.model_dump(exclude_none=True) for t in offered] or None,
        tool_choice=choice,
        reasoning=reasoning,
        template_kwargs=kwargs,
        constraint=constraint,
        output=OutputFormat(
            reasoning_format=caps.reasoning_format,
            tool_call_format=caps.tool_call_format if offered else None,
            tool_names=frozenset(names) if offered else None,
            parallel_tool_calls=parallel,
        ),
    )


def _tools(raw: list[dict[str, Any]] | None) -> list[_Tool]:
    tools: list[_Tool] = []
    seen: set[str] = set()
    for i, item in enumerate(raw or []):
        if not isinstance(item, dict) or item.get("type") != "function":
            raise InvalidRequestError("Only tools of type 'function' are supported.", param=f"tools[{i}].type")
        try:
            tool = _Tool.model_validate(item)
        except ValidationError as e:
            errors = [{**err, "loc": ("tools", i, *err["loc"])} for err in e.errors()]
            raise validation_error(errors) from None
        name = tool.function.name
        if name in seen:
            raise InvalidRequestError(
                f"Two tools are named '{clip(name)}'.", param=f"tools[{i}].function.name", code="duplicate_tool_name"
            )
        seen.add(name)
        if tool.function.parameters is not None:
            check_schema(tool.function.parameters, param=f"tools[{i}].function.parameters")
        tools.append(tool)
    return tools


def _tool_choice(raw: Any, tools: list[_Tool]) -> str:
    if raw is None:
        return "auto" if tools else "none"
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise InvalidRequestError(
                "tool_choice must be 'none', 'auto', 'required' or "
                '{"type": "function", "function": {"name": ...}}.',
                param="tool_choice",
            )
        if raw == "required" and not tools:
            raise InvalidRequestError(
                "tool_choice 'required' needs 'tools'.", param="tool_choice", code="tool_choice_mismatch"
            )
        return raw
    function = raw.get("function") if isinstance(raw, dict) else None
    name = function.get("name") if isinstance(function, dict) else raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("type") != "function" or not isinstance(name, str):
        raise InvalidRequestError(
            'A named tool_choice looks like {"type": "function", "function": {"name": "my_function"}}.',
            param="tool_choice",
        )
    if name not in {t.function.name for t in tools}:
        raise InvalidRequestError(
            f"tool_choice names '{clip(name)}', which is not in 'tools'.",
            param="tool_choice",
            code="tool_choice_mismatch",
        )
    return f"function:{name}"


def _response_format(raw: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
    """The JSON schema the answer must match (None: free text), and whether it is strict."""
    if raw is None:
        return None, False
    kind = raw.get("type")
    if kind == "text":
        return None, False
    if kind == "json_object":
        return {"type": "object"}, False
    if kind != "json_schema":
        raise InvalidRequestError(
            "response_format.type must be 'text', 'json_object' or 'json_schema'.", param="response_format.type"
        )
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidRequestError(
            'response_format json_schema needs {"json_schema": {"name": ..., "schema": {...}}}.',
            param="response_format.json_schema",
        )
    schema = spec.get("schema", {"type": "object"})
    param = "response_format.json_schema.schema"
    if not isinstance(schema, dict):
        raise InvalidRequestError("The schema must be a JSON object (a JSON Schema).", param=param)
    check_schema(schema, param=param)
    strict = spec.get("strict")
    strict = False if strict is None else strict  # null: the default
    if not isinstance(strict, bool):  # "no" would read as true, 0 as false
        raise InvalidRequestError(
            "response_format.json_schema.strict must be true or false.", param="response_format.json_schema.strict"
        )
    return schema, strict


def _reasoning_switch(req: ChatCompletionRequest) -> bool | None:
    if req.reasoning_effort is not None and req.reasoning_effort not in REASONING_EFFORTS:
        raise InvalidRequestError(
            f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}.", param="reasoning_effort"
        )
    kwargs = req.chat_template_kwargs or {}
    if isinstance(kwargs.get("enable_thinking"), bool):
        return bool(kwargs["enable_thinking"])
    if req.reasoning_effort is not None:
        return req.reasoning_effort != "none"
    return _system_switch(req.messages)


def _system_switch(messages: list[Message]) -> bool | None:
    """The last ``/think`` or ``/no_think`` in a system (or developer) message."""
    found: bool | None = None
    for m in messages:
        if m.role not in ("system", "developer") or m.content is None:
            continue
        text = m.content if isinstance(m.content, str) else " ".join(getattr(p, "text", "") for p in m.content)
        for match in _SWITCH.finditer(text):
            found = match.group(1) == "think"
    return found


def _template_kwargs(raw: dict[str, Any] | None) -> dict[str, Any]:
    kwargs = dict(raw or {})
    for key in kwargs:
        if not _KWARG_NAME.fullmatch(key) or key in RESERVED_TEMPLATE_KWARGS:
            raise InvalidRequestError(
                f"'{clip(key)}' cannot be passed to the chat template (names are identifiers, and "
                "apply_chat_template's own arguments are set by the server).",
                param=f"chat_template_kwargs.{key}",
            )
    if "enable_thinking" in kwargs and not isinstance(kwargs["enable_thinking"], bool):
        raise InvalidRequestError(
            "chat_template_kwargs.enable_thinking must be true or false.", param="chat_template_kwargs.enable_thinking"
        )
    return kwargs
