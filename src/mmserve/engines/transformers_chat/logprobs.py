"""OpenAI ``logprobs`` entries from a row of log-probabilities.

A token's ``bytes`` are its exact bytes (a byte-level BPE token can hold part of a UTF-8
character), read from llguidance's token table, which knows every tokenizer family's
byte encoding; ``token`` is those bytes as text (U+FFFD for a partial character, as vLLM
returns it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmserve.engines.transformers_chat.sampling import MIN_LOGPROB
from mmserve.engines.types import TokenLogprob, TopLogprob


class LogprobEntries:
    def __init__(self, token_bytes: Callable[[int], bytes]) -> None:
        self._bytes = token_bytes
        self._cache: dict[int, tuple[str, list[int]]] = {}

    def entry(self, logprobs: Any, token: int, top: int) -> TokenLogprob:
        """The entry of ``token`` sampled from ``logprobs`` (a 1-D tensor), with its ``top`` alternatives."""
        values = [float(logprobs[token])]
        ids = [token]
        if top:
            best = logprobs.topk(min(top, logprobs.shape[-1]))
            values += best.values.tolist()
            ids += best.indices.tolist()
        text, raw = self._text(token)
        first = TokenLogprob(text, _finite(values[0]), raw)
        for value, i in zip(values[1:], ids[1:], strict=True):
            t, b = self._text(i)
            first.top_logprobs.append(TopLogprob(t, _finite(value), b))
        return first

    def _text(self, token: int) -> tuple[str, list[int]]:
        found = self._cache.get(token)
        if found is None:
            raw = self._bytes(token)
            found = self._cache[token] = (raw.decode("utf-8", errors="replace"), list(raw))
        return found


def _finite(value: float) -> float:
    return value if value > MIN_LOGPROB else MIN_LOGPROB
