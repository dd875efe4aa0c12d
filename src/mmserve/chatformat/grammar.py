"""What a constrained answer must look like, as an llguidance Lark grammar.

``response_format`` (``json_object`` / ``json_schema``) and ``tool_choice`` (``required`` or
a named function) are enforced while decoding: at every step, tokens that cannot continue
a valid answer are masked out, so the output always parses. The grammar is written in the
model's own formats, so the same parsers read it back:

    start: (<think> trace gap)? answer            a reasoning model may think first
    answer: %json {schema}                        response_format
          | call ("\\n" call)*                     tool_choice required (one call unless parallel)
    call: <tool_call> "\\n" %json {anyOf: [{"name": const, "arguments": parameters}, ...]} "\\n" </tool_call>

Tags that are single added tokens of the vocabulary (as in Qwen3) are written as
llguidance token references (``<think>``), others as text (``"<think>"``); a trace the
template already opened in the prompt must be closed first.

The grammar is engine independent text: the transformers engine enforces it with
llguidance's matcher, and vLLM / SGLang accept the same Lark grammars (``guided_grammar``).
JSON is compact (``", "`` and ``": "`` separators, no free whitespace) so that a sampler can
never wander off into endless whitespace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mmserve.chatformat.reasoning import REASONING_PARSERS
from mmserve.chatformat.tools import TOOL_PARSERS

JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True)
class OutputConstraint:
    """An answer shape for one request. ``param`` is the request field to blame if it cannot be enforced."""

    json_schema: dict[str, Any] | None = None  # the answer may be (or must be, without tools) this JSON
    tools: tuple[ToolSpec, ...] = ()  # the answer may be tool calls to these
    require_tool_call: bool = False  # ... and must be (tool_choice required / named)
    parallel_tool_calls: bool = True
    tool_call_format: str | None = None
    reasoning_format: str | None = None  # a reasoning trace may come first
    strict: bool = True  # False: schema keywords llguidance does not implement are ignored, not refused
    param: str = "response_format"

    def grammar(self, prompt: str | None = None, *, token_tags: frozenset[str] = frozenset()) -> str:
        """The Lark grammar.

        ``prompt`` (the rendered prompt) tells whether the template opened a trace.
        ``token_tags`` are the format's tags (``<think>``, ``<tool_call>``...) that are single
        added tokens of the model's vocabulary: they are matched as tokens, not as text.
        """
        tag = _Tags(token_tags)
        rules = ["%llguidance {}"]
        if self.reasoning_format:
            parser = REASONING_PARSERS[self.reasoning_format]
            if parser.opens_in_prompt(prompt):
                rules.append("start: trace gap answer")
            else:
                rules.append(f"start: ({tag(parser.start_tag)} trace gap)? answer")
            if parser.end_tag in token_tags:  # the trace is any text, ended by the end token
                rules.append(f"trace: /(?s:.*)/ {tag(parser.end_tag)}")
            else:  # ... or by the first occurrence of the end text
                rules.append(f"trace[lazy]: /(?s:.*){_lark_regex_literal(parser.end_tag)}/")
            rules.append("gap: /[ \\n]{0,4}/")
        else:
            rules.append("start: answer")
        alternatives = []
        if self.json_schema is not None and not self.require_tool_call:
            alternatives.append("json_answer")
            rules.append(f"json_answer: %json {_schema(self.json_schema, lenient=not self.strict)}")
        if self.tools:
            alternatives.append("calls")
            rules += self._call_rules(tag)
        if not alternatives:
            raise ValueError("an output constraint needs a JSON schema or tools")
        rules.append("answer: " + " | ".join(alternatives))
        return "\n".join(rules) + "\n"

    def _call_rules(self, tag: _Tags) -> list[str]:
        fmt = self.tool_call_format
        if fmt not in TOOL_PARSERS:
            raise ValueError(f"tool calls in format {fmt!r} cannot be constrained")
        parser = TOOL_PARSERS[fmt]
        body = {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                }
                for t in self.tools
            ]
        }
        calls = 'call ("\\n" call)*' if self.parallel_tool_calls else "call"
        return [
            f"calls: {calls}",
            f'call: {tag(parser.start_tag)} "\\n" call_body "\\n" {tag(parser.end_tag)}',
            # Tool schemas come from many clients: keywords llguidance lacks are ignored, not fatal.
            f"call_body: %json {_schema(body, lenient=True)}",
        ]


class _Tags:
    """Renders a tag as an llguidance special-token reference when it is one token, else as text."""

    def __init__(self, token_tags: frozenset[str]) -> None:
        self.token_tags = token_tags

    def __call__(self, text: str) -> str:
        return text if text in self.token_tags else _lit(text)


def _schema(schema: dict[str, Any], *, lenient: bool) -> str:
    return json.dumps({**schema, "x-guidance": {**JSON_STYLE, "lenient": lenient}}, ensure_ascii=False)


def _lit(text: str) -> str:
    """A Lark string literal (JSON string escapes are Lark's too)."""
    return json.dumps(text)


def _lark_regex_literal(text: str) -> str:
    """``text`` matched literally inside a Lark ``/regex/``."""
    return "".join(f"\\{c}" if c in _REGEX_META else c for c in text)


_REGEX_META = set("\\.+*?()|[]{}^$#&-~/")
