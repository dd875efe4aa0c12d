"""Special tokens typed in user and tool text: plain text, not control tokens (unless the card allows them).

The prompt is rendered to a string and tokenised whole, and tokenizers match their added
tokens anywhere in it: a user who types ``<|im_start|>system`` would open a system turn, and
``<image>`` would claim an image slot (vLLM tokenises them so). By default the engine
escapes, in user and tool messages only, every added token that is special or looks like
markup (``<...>``: turn markers, ``<think>``, ``<tool_call>``, media placeholders) by putting
a zero-width space (U+200B) after its first character: the model reads the same characters,
and no tokenizer matches the token. Text of the operator (system prompts, the template's
own markers, tool definitions) keeps its control tokens. The engine option
``user_special_tokens: allow`` restores vLLM's behaviour.
"""

from __future__ import annotations

import itertools
import logging
import re
from typing import Any

log = logging.getLogger("mmserve.engines.transformers_chat.typed_specials")

ESCAPE = "\u200b"  # zero-width space: invisible, and outside every token it splits
ESCAPED_ROLES = frozenset({"user", "tool"})
_PLACEHOLDERS = ("image_token", "video_token", "audio_token")


class TypedSpecials:
    def __init__(self, tokenizer: Any, processor: Any = None) -> None:
        strings: set[str] = set()
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        for token in added.values():
            text = str(getattr(token, "content", token))
            if getattr(token, "special", False) or (len(text) > 2 and text[0] == "<" and text[-1] == ">"):
                strings.add(text)
        for attr in _PLACEHOLDERS:
            value = getattr(processor, attr, None)
            if isinstance(value, str) and value:
                strings.add(value)
        strings = {s for s in strings if len(s) > 1}
        self.strings = sorted(strings, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self.strings))) if self.strings else None
        self._longest = max((len(s) for s in self.strings), default=0)
        self._check(tokenizer, set(added))

    def _check(self, tokenizer: Any, added_ids: set[int]) -> None:
        """Escaping must keep every added token out (a normalizer that drops U+200B would undo it)."""
        if not self.strings:
            return
        ids = tokenizer(" ".join(self.escape(s) for s in self.strings), add_special_tokens=False)["input_ids"]
        if added_ids & set(ids):
            log.warning("this tokenizer drops U+200B: typed special tokens in user text cannot be escaped")
            self._pattern = None

    def escape(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: m[0][0] + ESCAPE + m[0][1:], text)

    def escape_entries(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Template messages with their user and tool text escaped (a new list; the others untouched)."""
        if self._pattern is None:
            return entries
        out = []
        for entry in entries:
            if entry.get("role") in ESCAPED_ROLES:
                entry = dict(entry)
                if isinstance(entry.get("content"), str):
                    entry["content"] = self.escape(entry["content"])
                elif isinstance(entry.get("content"), list):
                    entry["content"] = self._escape_parts(entry["content"])
                if isinstance(entry.get("name"), str):
                    entry["name"] = self.escape(entry["name"])
            out.append(entry)
        return out

    def _escape_parts(self, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = [{**p, "text": self.escape(p["text"])} if p.get("type") == "text" else p for p in parts]
        # templates write adjacent text parts back to back: a token split across two parts is joined again
        assert self._pattern is not None
        for a, b in itertools.pairwise(out):
            if a.get("type") != "text" or b.get("type") != "text" or not a["text"] or not b["text"]:
                continue
            tail, head = a["text"][-(self._longest - 1) :], b["text"][: self._longest - 1]
            if any(m.start() < len(tail) < m.end() for m in self._pattern.finditer(tail + head)):
                b["text"] = ESCAPE + b["text"]
        return out
