"""Helpers to stream text out of token ids: incremental detokenization, stops, the fast decoder.

Hand-written because transformers' TextIteratorStreamer holds text back until a word
boundary (print-friendly, not token-friendly) and knows nothing of OpenAI stop strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class IncrementalDetokenizer:
    """Decode a growing list of ids into text deltas without re-decoding everything.

    Uses the prefix/read offset scheme of TGI and vLLM: decode a short window of ids and
    emit only what is new once it no longer ends in a partial UTF-8 sequence (U+FFFD).
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self.ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        new_text = self._decode(self.ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(prefix_text) :]
            self._prefix, self._read = self._read, len(self.ids)
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end)."""
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        new_text = self._decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return new_text[len(prefix_text) :] if len(new_text) > len(prefix_text) else ""


class StopMatcher:
    """Cut streamed text at the first OpenAI ``stop`` string, never emitting any part of it.

    Text that might be the start of a stop string is held back until it is decided.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self.stops), default=1) - 1
        self._buf = ""
        self.stopped = False

    def push(self, text: str) -> str:
        if self.stopped:
            return ""
        if not self.stops:
            return text
        self._buf += text
        hits = [i for i in (self._buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self._buf = self._buf[: min(hits)], ""
            return out
        cut = max(0, len(self._buf) - self._hold)
        out, self._buf = self._buf[:cut], self._buf[cut:]
        return out

    def flush(self) -> str:
        out, self._buf = ("" if self.stopped else self._buf), ""
        return out


def fast_decoder(tokenizer: Any) -> Any:
    """The tokenizer's decode, called twice per streamed token.

    For a fast tokenizer whose decode is transformers' own (no subclass override, no space
    clean-up), the Rust tokenizer it delegates to, without ~10 us of Python per call.
    """
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    backend = getattr(tokenizer, "_tokenizer", None)
    if (
        backend is not None
        and isinstance(tokenizer, TokenizersBackend)
        and type(tokenizer)._decode is TokenizersBackend._decode
        and not tokenizer.clean_up_tokenization_spaces
    ):
        return backend.decode
    return tokenizer.decode
