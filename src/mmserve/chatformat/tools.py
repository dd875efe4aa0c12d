"""Parse tool calls out of a model's answer, incrementally, across chunk boundaries.

Formats (a card's ``capabilities.tool_call_format``):

- ``hermes``: each call is a JSON object in ``<tool_call>`` ... ``</tool_call>``, as in
  Hermes 2/3 and the Qwen2.5/Qwen3 chat templates::

      I'll look that up.
      <tool_call>
      {"name": "get_weather", "arguments": {"city": "Paris"}}
      </tool_call>

  Some models write ``"parameters"`` for ``"arguments"``, give the arguments as a JSON
  string, or (Hermes 2 Pro) a Python dict literal; all are accepted.

Robustness rules: a call that does not parse, is not an object with a string ``name``, or
names a function the request did not offer is returned verbatim as text (never an error);
an unclosed ``<tool_call>`` at the end of the output is parsed if its JSON is complete.
Whitespace that only separates calls is dropped. Each call is emitted once it is complete,
so that a malformed one can still become text: clients see whole calls, not token-by-token
arguments.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from mmserve.chatformat._text import partial_tag_len, split_trailing_space

MAX_CALL_CHARS = 1_000_000  # a literal_eval fallback on more than this is not attempted


@dataclass
class ParsedCall:
    name: str
    arguments: str  # a JSON object, serialised


@dataclass
class TextPiece:
    text: str


Event = ParsedCall | TextPiece


class HermesToolParser:
    """Incremental parser for ``<tool_call>{json}</tool_call>`` blocks. Feed answer text, then ``finish()``."""

    start_tag: ClassVar[str] = "<tool_call>"
    end_tag: ClassVar[str] = "</tool_call>"

    def __init__(self, tool_names: set[str] | None = None) -> None:
        self.tool_names = tool_names
        self._buf = ""
        self._in_call = False
        self._space = ""  # the whitespace before the current call

    def feed(self, text: str) -> list[Event]:
        self._buf += text
        return self._drain(final=False)

    def finish(self) -> list[Event]:
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> list[Event]:
        out: list[Event] = []
        while True:
            if self._in_call:
                end = self._buf.find(self.end_tag)
                if end < 0 and not final:
                    return out
                body = self._buf if end < 0 else self._buf[:end]
                raw = self.start_tag + (body if end < 0 else self._buf[: end + len(self.end_tag)])
                self._buf = "" if end < 0 else self._buf[end + len(self.end_tag) :]
                self._in_call = False
                call = self.parse_call(body)
                out.append(call if call is not None else TextPiece(self._space + raw))
                continue
            start = self._buf.find(self.start_tag)
            if start >= 0:
                # Space before a call only separates it: dropped, unless the call turns out to be text.
                before, self._space = split_trailing_space(self._buf[:start])
                if before:
                    out.append(TextPiece(before))
                self._buf = self._buf[start + len(self.start_tag) :]
                self._in_call = True
                continue
            if final:
                text = self._buf.rstrip()
                if text:
                    out.append(TextPiece(text))
                self._buf = ""
                return out
            hold = partial_tag_len(self._buf, self.start_tag)
            text, space = split_trailing_space(self._buf[: len(self._buf) - hold])
            if text:
                out.append(TextPiece(text))
            self._buf = space + self._buf[len(self._buf) - hold :]
            return out

    @classmethod
    def render(cls, name: str, arguments: str) -> str:
        """A call as the model writes it (engines that receive structured calls, e.g. upstream, emit this)."""
        args: Any = _load_object(arguments) if arguments.strip() else {}
        body = json.dumps({"name": name, "arguments": arguments if args is None else args}, ensure_ascii=False)
        return f"{cls.start_tag}\n{body}\n{cls.end_tag}"

    def parse_call(self, body: str) -> ParsedCall | None:
        obj = _load_object(body.strip())
        if obj is None:
            return None
        name = obj.get("name")
        args: Any = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            args = _load_object(args) if args.strip() else {}
        if not isinstance(name, str) or not name or not isinstance(args, dict):
            return None
        if self.tool_names is not None and name not in self.tool_names:
            return None
        try:
            return ParsedCall(name, json.dumps(args, ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError, RecursionError):  # a set, bytes or NaN from a literal: not JSON
            return None


def _load_object(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except RecursionError:
        return None
    except ValueError:
        # Hermes 2 Pro writes Python dict literals ({'name': ..., 'arguments': {...}}).
        # literal_eval only builds literals (no code runs); the size cap bounds its work.
        if len(text) > MAX_CALL_CHARS or not text.startswith("{"):
            return None
        try:
            obj = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return obj if isinstance(obj, dict) else None


TOOL_PARSERS: dict[str, type[HermesToolParser]] = {"hermes": HermesToolParser}


def tool_parser(fmt: str, tool_names: set[str] | None = None) -> HermesToolParser:
    return TOOL_PARSERS[fmt](tool_names)
