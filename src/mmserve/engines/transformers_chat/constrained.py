"""Constrained decoding for transformers engines: an llguidance grammar as a logits processor.

Why llguidance (``benchmarks/structured_output.py library``: byte-level BPE tokenizers of
600 / 8k / 32k tokens, torch 2.13 CPU, a new JSON schema per request as clients send them):
llguidance compiles a schema in ~0.5-1 ms at every vocabulary size and masks a step in
~8 us (median); a 45-token answer costs ~1.3 ms in all at 32k. xgrammar masks faster
(~1 us) but its first compile took ~60-290 ms and later ones ~4-12 ms (~12 ms per answer
at 32k), and it pulls in triton; outlines-core builds a whole index per schema (~100 ms at
32k, growing with the vocabulary). All three install and accept these tokenizers. Per
request, llguidance is fastest until answers run to about a thousand tokens, and it has no
dependencies. It is also what OpenAI's structured outputs and vLLM's / SGLang's
``guidance`` backends run.

The processor runs after the model's own processors and before the engine's sampler,
so the sampler only ever picks tokens the grammar allows.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mmserve.chatformat.grammar import OutputConstraint
from mmserve.chatformat.reasoning import REASONING_PARSERS
from mmserve.chatformat.tools import TOOL_PARSERS
from mmserve.errors import InvalidRequestError

log = logging.getLogger("mmserve.engines.transformers_chat.constrained")


class GrammarCompiler:
    """One per loaded model: the llguidance view of its tokenizer (built on first use, ~1 s for big vocabularies)."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: list[int]) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_ids = eos_ids
        self._lltok: Any = None
        self._lock = threading.Lock()

    def _ll_tokenizer(self) -> Any:
        with self._lock:
            if self._lltok is None:
                import llguidance.hf

                self._lltok = llguidance.hf.from_tokenizer(
                    self.tokenizer, n_vocab=self.vocab_size, eos_token=self.eos_ids
                )
            return self._lltok

    def token_bytes(self, token: int) -> bytes:
        """The exact bytes of one token (special tokens: their text)."""
        raw: bytes = self._ll_tokenizer().decode_bytes([token])
        return raw

    def token_tags(self, constraint: OutputConstraint) -> frozenset[str]:
        """The format tags that are single added tokens (llguidance matches those as tokens, not bytes)."""
        lltok = self._ll_tokenizer()
        tags: list[str] = []
        if constraint.reasoning_format:
            p = REASONING_PARSERS[constraint.reasoning_format]
            tags += [p.start_tag, p.end_tag]
        if constraint.tool_call_format in TOOL_PARSERS:
            t = TOOL_PARSERS[constraint.tool_call_format]
            tags += [t.start_tag, t.end_tag]
        found = set()
        for tag in tags:
            ids = self.tokenizer.encode(tag, add_special_tokens=False)
            if len(ids) == 1 and ids[0] < self.vocab_size and lltok.is_special_token(ids[0]):
                found.add(tag)
        return frozenset(found)

    def processor(self, constraint: OutputConstraint, prompt: str | None, prompt_len: int) -> GrammarProcessor:
        """Compile the grammar for one request; a grammar llguidance refuses is the client's 400."""
        import llguidance

        grammar = constraint.grammar(prompt, token_tags=self.token_tags(constraint))
        matcher = llguidance.LLMatcher(self._ll_tokenizer(), grammar, log_level=0)
        if matcher.is_error():
            raise InvalidRequestError(
                f"The schema in '{constraint.param}' cannot be enforced: {_first_line(matcher.get_error())}.",
                param=constraint.param,
                code="invalid_schema",
            )
        return GrammarProcessor(matcher, self.vocab_size, prompt_len)


class GrammarProcessor:
    """A LogitsProcessor: feeds the last sampled token to the matcher, then masks what the grammar forbids.

    If the mask and earlier processors (e.g. a model's ``suppress_tokens``) leave nothing,
    the grammar wins: its allowed tokens are kept at equal odds, so decoding never fails.
    If the matcher itself fails (it should not: the sampler honours the mask), the rest of
    the output is unconstrained and the failure is logged.
    """

    def __init__(self, matcher: Any, vocab_size: int, prompt_len: int) -> None:
        import torch

        self.matcher = matcher
        self.prompt_len = prompt_len
        self.vocab_size = vocab_size
        self.bitmask = torch.zeros((1, (vocab_size + 31) // 32), dtype=torch.int32)
        self._bits = (torch.ones(32, dtype=torch.int64) << torch.arange(32)).to(torch.int32)
        self._failed = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._failed:
            return scores
        if input_ids.shape[1] > self.prompt_len and not self.matcher.consume_token(int(input_ids[0, -1])):
            self._failed = True
            log.warning("constrained decoding stopped: %s", _first_line(self.matcher.get_error()))
            return scores
        # What llguidance.torch.fill_next_token_bitmask does, without importing that module:
        # it decorates a kernel with torch.compile, which costs seconds of import time.
        self.matcher.unsafe_compute_mask_ptr(self.bitmask.data_ptr(), self.bitmask.numel() * 4)
        allowed = ((self.bitmask[0].unsqueeze(1) & self._bits) != 0).reshape(-1)[: self.vocab_size]
        allowed = allowed.to(scores.device)
        if scores.shape[-1] > self.vocab_size:  # logits wider than the tokenizer: padding ids are never allowed
            pad = torch.zeros(scores.shape[-1] - self.vocab_size, dtype=torch.bool, device=scores.device)
            allowed = torch.cat([allowed, pad])
        masked = scores.masked_fill(~allowed, float("-inf"))
        if torch.isneginf(masked).all():
            masked = torch.zeros_like(scores).masked_fill(~allowed, float("-inf"))
        return masked


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    # llguidance prefixes a grammar position ("at 3(14): "); the client wrote no grammar.
    if line.startswith("at ") and ": " in line:
        line = line.split(": ", 1)[1]
    return line.rstrip(".")
