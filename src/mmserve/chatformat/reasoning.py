"""Split a model's reasoning trace from its answer, incrementally, across chunk boundaries.

Formats (a card's ``capabilities.reasoning_format``):

- ``think-tags``: the trace is wrapped in ``<think>`` ... ``</think>`` at the start of the
  output (Qwen3, QwQ, DeepSeek-R1 and its distills, Hermes 4). Chat templates that open
  the block themselves (DeepSeek-R1's current template, Qwen3-*-Thinking-2507) end the
  prompt with ``<think>``: then the output starts inside the trace and only ``</think>``
  appears. With thinking switched off, Qwen3's template closes an empty block in the prompt
  and the output is all answer.

Whitespace that only pads the tags (``<think>\\n`` ... ``\\n</think>\\n\\n``) is dropped, so
``reasoning_content`` and ``content`` are what a reader expects. A trace cut off by
``max_tokens`` stays reasoning; text that merely mentions ``<think>`` later is content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from mmserve.chatformat._text import partial_tag_len, split_trailing_space

Channel = Literal["reasoning", "content"]


@dataclass
class Piece:
    channel: Channel
    text: str


class ThinkTagsParser:
    """Incremental parser for ``<think>...</think>`` traces. Feed text deltas, then ``finish()``."""

    start_tag: ClassVar[str] = "<think>"
    end_tag: ClassVar[str] = "</think>"

    def __init__(self, *, open_at_start: bool = False) -> None:
        self._state: Literal["start", "reasoning", "after", "content"] = "reasoning" if open_at_start else "start"
        self._buf = ""
        self._emitted_reasoning = False
        #: the trace was closed (everything after ``end_tag`` is answer)
        self.closed = False
        #: the output had a trace at all
        self.saw_reasoning = open_at_start

    @classmethod
    def opens_in_prompt(cls, prompt: str | None) -> bool:
        """Whether the chat template already opened the trace at the end of the prompt."""
        return bool(prompt) and prompt.rstrip().endswith(cls.start_tag)  # type: ignore[union-attr]

    def feed(self, text: str) -> list[Piece]:
        self._buf += text
        return self._drain(final=False)

    def finish(self) -> list[Piece]:
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> list[Piece]:
        out: list[Piece] = []
        while True:
            if self._state == "start":
                head = self._buf.lstrip()
                if head.startswith(self.start_tag):
                    self._buf = head[len(self.start_tag) :]
                    self._state = "reasoning"
                    self.saw_reasoning = True
                    continue
                if not final and self.start_tag.startswith(head):  # "", "<", "<thi": undecided
                    return out
                self._state = "content"
                continue
            if self._state == "reasoning":
                if not self._emitted_reasoning:
                    self._buf = self._buf.lstrip()
                end = self._buf.find(self.end_tag)
                if end >= 0:
                    self._emit_reasoning(out, self._buf[:end].rstrip())
                    self._buf = self._buf[end + len(self.end_tag) :]
                    self._state = "after"
                    self.closed = True
                    continue
                if final:
                    self._emit_reasoning(out, self._buf.rstrip())
                    self._buf = ""
                    return out
                hold = partial_tag_len(self._buf, self.end_tag)
                body, space = split_trailing_space(self._buf[: len(self._buf) - hold])
                self._emit_reasoning(out, body)
                self._buf = space + self._buf[len(self._buf) - hold :]
                return out
            if self._state == "after":
                self._buf = self._buf.lstrip()
                if not self._buf and not final:
                    return out
                self._state = "content"
                continue
            if self._buf:
                out.append(Piece("content", self._buf))
                self._buf = ""
            return out

    def _emit_reasoning(self, out: list[Piece], text: str) -> None:
        if text:
            out.append(Piece("reasoning", text))
            self._emitted_reasoning = True


REASONING_PARSERS: dict[str, type[ThinkTagsParser]] = {"think-tags": ThinkTagsParser}


def reasoning_parser(fmt: str, *, prompt: str | None = None) -> ThinkTagsParser:
    """A fresh parser for one choice of a request; ``prompt`` tells whether the template opened the trace."""
    cls = REASONING_PARSERS[fmt]
    return cls(open_at_start=cls.opens_in_prompt(prompt))
