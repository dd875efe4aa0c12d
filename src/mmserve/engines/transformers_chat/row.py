"""One generation in the running batch: its inputs, sampling, logits processors, stop rules and stream.

A row belongs to the decode loop's thread, which calls :meth:`Row.choose` and
:meth:`Row.accept` for every token; only :meth:`Row.cancel` is called from elsewhere (the
event loop, when the client leaves). What the row produces goes to the event loop through
``send``: :class:`Out` items, then one with ``finish_reason``, or an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmserve.engines.transformers_chat.logprobs import LogprobEntries
from mmserve.engines.transformers_chat.sampling import SeededSampler
from mmserve.engines.transformers_chat.textstream import IncrementalDetokenizer, StopMatcher
from mmserve.engines.types import SamplingParams, TokenLogprob


@dataclass
class Prepared:
    """A request made ready for the model (off the decode loop): tokenized, with its processors."""

    inputs: Any  # BatchEncoding on the model's device: input_ids, attention_mask, pixel_values...
    prompt_ids: list[int]
    max_new_tokens: int
    prompt: str = ""
    processors: list[Any] = field(default_factory=list)  # the model's, the card's hooks, then the grammar
    image_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)


@dataclass
class Out:
    text: str
    count: int  # completion tokens so far
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None  # set on the last item


class Row:
    def __init__(
        self,
        prepared: Prepared,
        params: SamplingParams,
        *,
        eos: Sequence[int],
        decode: Callable[[Sequence[int]], str],
        entries: LogprobEntries | None,
        send: Callable[[Any], None],
        device: Any,
    ) -> None:
        import torch

        self.prepared = prepared
        self.inputs: Any = prepared.inputs  # dropped after the prefill (pixel values can be large)
        self.prompt_len = prepared.prompt_tokens
        self.max_new = prepared.max_new_tokens
        self.sampler = SeededSampler(params, device)
        self.eos = frozenset() if params.ignore_eos else frozenset(eos)
        self.detok = IncrementalDetokenizer(decode)
        self.stops = StopMatcher(params.stop)
        self.entries = entries if params.logprobs else None
        self.top = params.top_logprobs
        self.send = send
        # prompt + output ids, for the processors (they see the whole sequence, as in generate())
        self.ids = torch.empty((1, self.prompt_len + self.max_new), dtype=torch.long, device=device)
        self.ids[0, : self.prompt_len] = prepared.inputs["input_ids"][0]
        self.length = self.prompt_len
        self.count = 0
        self.eos_hit = False
        self.cancelled = False
        self.pending: list[TokenLogprob] = []

    @property
    def greedy_plain(self) -> bool:
        """Greedy with nothing to compute per row: the batch can take the argmax of every such row at once."""
        s = self.sampler
        return not self.prepared.processors and s.t < 1e-5 and not (s.presence or s.frequency) and not s.want_logprobs

    def cancel(self) -> None:
        """The client left: the loop drops the row before its next step (a bool write: no lock needed)."""
        self.cancelled = True

    def choose(self, logits: Any) -> int:
        """The next token, from this row's logits (1 x vocab)."""
        ids = self.ids[:, : self.length]
        scores = logits
        for processor in self.prepared.processors:
            scores = processor(ids, scores)
        return self.sampler.sample(scores, ids[:, self.prompt_len :])

    def accept(self, token: int) -> bool:
        """Record and stream ``token``; whether the row is done (end of sequence, a stop string or max_tokens)."""
        self.ids[0, self.length] = token
        self.length += 1
        self.count += 1
        if token in self.eos:
            self.eos_hit = True
            return True
        if self.entries is not None and self.sampler.last_logprobs is not None:
            self.pending.append(self.entries.entry(self.sampler.last_logprobs, token, self.top))
        text = self.stops.push(self.detok.push(token))
        if text:
            self.send(Out(text, self.count, self._take_logprobs()))
        return self.stops.stopped or self.count >= self.max_new

    def finish(self) -> None:
        tail = self.stops.push(self.detok.flush()) + self.stops.flush()
        ended = self.eos_hit or self.stops.stopped
        reason = "length" if not ended and self.count >= self.max_new else "stop"
        self.send(Out(tail, self.count, self._take_logprobs(), finish_reason=reason))

    def fail(self, exc: BaseException) -> None:
        self.send(exc)

    def _take_logprobs(self) -> list[TokenLogprob] | None:
        if self.entries is None:
            return None
        out, self.pending = self.pending, []
        return out
