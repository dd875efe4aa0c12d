"""A Responses request as the chat request it amounts to, so that it runs on chat's one engine path.

``instructions`` become a system message; the conversation so far (``previous_response_id``'s
stored items and output) and ``input`` become chat messages: ``input_text`` / ``input_image``
parts as text / image_url parts, ``input_file`` as the file's text, ``function_call`` items as
the assistant's ``tool_calls``, ``function_call_output`` items as ``tool`` messages and
``reasoning`` items as the next assistant message's ``reasoning_content``. Function tools,
``tool_choice``, ``text.format`` and ``reasoning.effort`` map to their chat fields.

Chat's errors name chat fields (``messages[3].content[1].image_url``); :class:`ParamMap`
renames them to the Responses request's (``input[2].content[1].image_url``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.api.errors import validation_error
from mmserve.api.responses.protocol import (
    FunctionCallItem,
    FunctionCallOutputItem,
    InputFile,
    InputImage,
    InputItem,
    InputText,
    ItemReference,
    MessageItem,
    OutputText,
    ReasoningItem,
    Refusal,
    ResponseRequest,
)
from mmserve.api.state import AppState
from mmserve.errors import InvalidRequestError, MMServeError
from mmserve.media.datauri import decode_base64, split_data_uri
from mmserve.media.textfile import read_text_file

ITEMS: TypeAdapter[list[Any]] = TypeAdapter(list[InputItem])
# A file's text counts against the model's context anyway; this bounds the work before that.
MAX_FILE_CHARS = 1_000_000
_MESSAGE = re.compile(r"^messages\[(\d+)\](.*)$")
_TOOL = re.compile(r"^tools\[(\d+)\]\.function(.*)$")
_RENAMED = (
    ("response_format.json_schema.schema", "text.format.schema"),
    ("response_format.json_schema.strict", "text.format.strict"),
    ("response_format.json_schema", "text.format"),
    ("response_format.type", "text.format.type"),
    ("response_format", "text.format"),
    ("max_completion_tokens", "max_output_tokens"),
    ("max_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning.effort"),
    ("messages", "input"),
)


@dataclass
class ParamMap:
    """Where each chat message came from: ``(prefix, content field)`` per message."""

    sources: list[tuple[str, str]] = field(default_factory=list)

    def rename(self, param: str | None) -> str | None:
        if param is None:
            return None
        m = _MESSAGE.match(param)
        if m and int(m.group(1)) < len(self.sources):
            prefix, content = self.sources[int(m.group(1))]
            rest = m.group(2)
            if prefix in ("instructions", "previous_response_id", "input"):
                return prefix
            if content and rest.startswith(".content"):
                rest = f".{content}" + rest.removeprefix(".content")
            return prefix + rest
        m = _TOOL.match(param)
        if m:
            return f"tools[{m.group(1)}]{m.group(2)}"
        for chat, responses in _RENAMED:
            if param == chat or param.startswith(chat + ".") or param.startswith(chat + "["):
                return responses + param.removeprefix(chat)
        return param

    def apply(self, error: MMServeError) -> MMServeError:
        error.param = self.rename(error.param)
        return error


def parse_items(raw: list[Any], *, param: str = "input") -> list[Any]:
    """Stored items (dicts) as input item models."""
    try:
        return ITEMS.validate_python(raw)
    except ValidationError as e:
        raise validation_error([{**err, "loc": (param, *err["loc"])} for err in e.errors()]) from None


class _Builder:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.messages: list[dict[str, Any]] = []
        self.params = ParamMap()
        self._reasoning: str | None = None  # a reasoning item waiting for its assistant turn
        self._open_turn = False  # the last message is an assistant turn that function calls may join

    def add(self, message: dict[str, Any], source: tuple[str, str]) -> None:
        self.messages.append(message)
        self.params.sources.append(source)
        self._open_turn = message["role"] == "assistant"

    async def item(self, item: Any, prefix: str) -> None:
        if isinstance(item, MessageItem):
            await self._message(item, prefix)
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            if self._open_turn:
                self.messages[-1].setdefault("tool_calls", []).append(call)
            else:
                self.add(
                    {"role": "assistant", "content": None, "tool_calls": [call], **self._take_reasoning()}, (prefix, "")
                )
        elif isinstance(item, FunctionCallOutputItem):
            content = (
                item.output if isinstance(item.output, str) else await self._parts(item.output, f"{prefix}.output")
            )
            self.add({"role": "tool", "tool_call_id": item.call_id, "content": content}, (prefix, "output"))
        elif isinstance(item, ReasoningItem):
            texts = [c.text for c in item.content or []] or [s.text for s in item.summary]
            self._reasoning = "".join(texts) or None
            self._open_turn = False
        elif isinstance(item, ItemReference):
            raise InvalidRequestError(
                "item_reference items are not supported: send the item itself, or continue a stored "
                "response with previous_response_id.",
                param=f"{prefix}.type",
            )

    async def _message(self, item: MessageItem, prefix: str) -> None:
        if item.role == "assistant":
            parts = [item.content] if isinstance(item.content, str) else item.content
            text = "".join(p if isinstance(p, str) else _part_text(p) or "" for p in parts)
            self.add({"role": "assistant", "content": text, **self._take_reasoning()}, (prefix, "content"))
            return
        content: str | list[dict[str, Any]] = (
            item.content if isinstance(item.content, str) else await self._parts(item.content, f"{prefix}.content")
        )
        self.add({"role": item.role, "content": content}, (prefix, "content"))

    async def _parts(self, parts: list[Any], param: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for j, part in enumerate(parts):
            where = f"{param}[{j}]"
            if isinstance(part, InputImage):
                if part.file_id is not None or part.image_url is None:
                    raise InvalidRequestError(
                        "mmserve has no Files API: send the image as image_url (an http(s) URL or a data URI).",
                        param=f"{where}.file_id" if part.file_id is not None else f"{where}.image_url",
                    )
                detail = "high" if part.detail == "original" else part.detail
                out.append({"type": "image_url", "image_url": {"url": part.image_url, "detail": detail}})
            elif isinstance(part, InputFile):
                out.append({"type": "text", "text": await self._file_text(part, where)})
            else:
                out.append({"type": "text", "text": _part_text(part) or ""})
        return out

    async def _file_text(self, part: InputFile, param: str) -> str:
        limits = self.state.settings.limits
        if part.file_data is not None:
            raw = part.file_data.strip()
            if raw[:5].lower() == "data:":
                payload = split_data_uri(raw, param=f"{param}.file_data", max_bytes=limits.max_data_uri_bytes).payload
            else:
                payload = raw
            data = decode_base64(payload, param=f"{param}.file_data")
        elif part.file_url is not None:
            fetched = await self.state.media.fetcher.fetch(
                part.file_url, param=f"{param}.file_url", max_bytes=limits.max_data_uri_bytes
            )
            data = fetched.data
        else:
            raise InvalidRequestError(
                "mmserve has no Files API: send the file's content as file_data (a data URI) or a file_url.",
                param=f"{param}.file_id" if part.file_id is not None else f"{param}.file_data",
            )
        text = read_text_file(data, param=param, max_chars=MAX_FILE_CHARS)
        return f"{part.filename}:\n{text}" if part.filename else text

    def _take_reasoning(self) -> dict[str, Any]:
        reasoning, self._reasoning = self._reasoning, None
        return {"reasoning_content": reasoning} if reasoning else {}


def _part_text(part: Any) -> str | None:
    if isinstance(part, InputText | OutputText):
        return part.text
    if isinstance(part, Refusal):
        return part.refusal
    return None


async def to_chat(state: AppState, req: ResponseRequest, history: list[Any]) -> tuple[ChatCompletionRequest, ParamMap]:
    """The chat request for ``req`` after the conversation ``history`` (parsed input items)."""
    b = _Builder(state)
    if req.instructions:
        b.add({"role": "system", "content": req.instructions}, ("instructions", ""))
    for item in history:
        await b.item(item, "previous_response_id")
    if isinstance(req.input, str):
        b.add({"role": "user", "content": req.input}, ("input", ""))
    else:
        for i, item in enumerate(req.input or []):
            await b.item(item, f"input[{i}]")
    if not any(m["role"] != "system" for m in b.messages):
        raise InvalidRequestError(
            "The request needs 'input' (or a previous_response_id to continue).", param="input", code="missing_input"
        )
    body: dict[str, Any] = {
        "model": req.model,
        "messages": b.messages,
        "max_tokens": req.max_output_tokens,
        "seed": req.seed,
        "tools": _tools(req.tools),
        "tool_choice": _tool_choice(req.tool_choice),
        "parallel_tool_calls": req.parallel_tool_calls,
        "response_format": _response_format(req),
        "reasoning_effort": req.reasoning.effort if req.reasoning else None,
        "logprobs": req.wants_logprobs or None,
        "top_logprobs": req.top_logprobs if req.wants_logprobs else None,
        "user": req.user,
    }
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    try:
        return ChatCompletionRequest.model_validate(body), b.params
    except ValidationError as e:
        raise b.params.apply(validation_error(e.errors())) from None


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise InvalidRequestError(
                f"Only function tools are supported (mmserve has no built-in tools such as '{kind}').",
                param=f"tools[{i}].type",
                code="unsupported_parameter",
            )
        function = {k: v for k, v in tool.items() if k in ("name", "description", "parameters", "strict")}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequestError(
        'tool_choice must be "none", "auto", "required" or {"type": "function", "name": ...}.', param="tool_choice"
    )


def _response_format(req: ResponseRequest) -> dict[str, Any] | None:
    fmt = req.text.format if req.text else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.schema_ is None:
        raise InvalidRequestError("A json_schema text format needs its 'schema'.", param="text.format.schema")
    spec = {"name": fmt.name or "response", "schema": fmt.schema_, "strict": fmt.strict}
    return {"type": "json_schema", "json_schema": spec}
