"""One choice's output, parsed as it streams: reasoning, answer text and tool calls.

The chat service feeds every engine text delta to a :class:`ChoiceOutput` and turns the
events it returns into ``delta.reasoning_content`` / ``delta.content`` / ``delta.tool_calls``
(streaming) or accumulates them into the message (non-streaming); both paths use the same
parser, so they agree exactly.

Reasoning tokens are counted as the completion tokens generated up to the delta that
closes the trace (all of them if the trace never closes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from mmserve.chatformat.reasoning import Piece, ThinkTagsParser, reasoning_parser
from mmserve.chatformat.tools import HermesToolParser, ParsedCall, TextPiece, tool_parser


@dataclass
class ToolCall:
    index: int
    id: str
    name: str
    arguments: str


@dataclass
class OutputEvent:
    kind: Literal["content", "reasoning", "tool_call"]
    text: str = ""
    call: ToolCall | None = None


@dataclass(frozen=True)
class OutputFormat:
    """How to read one request's output: from the card's formats and the request's tools."""

    reasoning_format: str | None = None
    tool_call_format: str | None = None  # None: tool calls are not parsed (no tools, or tool_choice none)
    tool_names: frozenset[str] | None = None
    parallel_tool_calls: bool = True

    def parser(self, prompt: str | None = None) -> ChoiceOutput:
        return ChoiceOutput(
            reasoning=reasoning_parser(self.reasoning_format, prompt=prompt) if self.reasoning_format else None,
            tools=tool_parser(self.tool_call_format, set(self.tool_names) if self.tool_names is not None else None)
            if self.tool_call_format
            else None,
            max_calls=None if self.parallel_tool_calls else 1,
        )


@dataclass
class ChoiceOutput:
    reasoning: ThinkTagsParser | None = None
    tools: HermesToolParser | None = None
    max_calls: int | None = None
    content: list[str] = field(default_factory=list)
    reasoning_text: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning_tokens: int = 0

    def feed(self, text: str, completion_tokens: int) -> list[OutputEvent]:
        if not text:
            return []
        if self.reasoning is None:
            return self._answer(self.tools.feed(text) if self.tools else [TextPiece(text)])
        was_closed = self.reasoning.closed
        events = self._split(self.reasoning.feed(text))
        if self.reasoning.closed and not was_closed:
            self.reasoning_tokens = completion_tokens
        return events

    def finish(self, completion_tokens: int) -> list[OutputEvent]:
        events: list[OutputEvent] = []
        if self.reasoning is not None:
            events = self._split(self.reasoning.finish())
            if self.reasoning.saw_reasoning and not self.reasoning.closed:
                self.reasoning_tokens = completion_tokens  # cut off while reasoning
        if self.tools is not None:
            events += self._answer(self.tools.finish())
        return events

    def finish_reason(self, engine_reason: str | None) -> str:
        reason = engine_reason or "stop"
        return "tool_calls" if self.tool_calls and reason == "stop" else reason

    @property
    def message_content(self) -> str | None:
        text = "".join(self.content)
        return None if self.tool_calls and not text.strip() else text

    @property
    def message_reasoning(self) -> str | None:
        return "".join(self.reasoning_text) or None

    # ------------------------------------------------------------------ internals

    def _split(self, pieces: list[Piece]) -> list[OutputEvent]:
        events: list[OutputEvent] = []
        for p in pieces:
            if p.channel == "reasoning":
                self.reasoning_text.append(p.text)
                events.append(OutputEvent("reasoning", p.text))
            else:
                events += self._answer(self.tools.feed(p.text) if self.tools else [TextPiece(p.text)])
        return events

    def _answer(self, items: list[ParsedCall | TextPiece]) -> list[OutputEvent]:
        events: list[OutputEvent] = []
        for item in items:
            if isinstance(item, TextPiece):
                if item.text:
                    self.content.append(item.text)
                    events.append(OutputEvent("content", item.text))
            elif self.max_calls is None or len(self.tool_calls) < self.max_calls:
                call = ToolCall(len(self.tool_calls), new_call_id(), item.name, item.arguments)
                self.tool_calls.append(call)
                events.append(OutputEvent("tool_call", call=call))
        return events


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
