"""One generation in the running batch: its inputs, sampling, logits processors, stop rules and stream.

A row belongs to the decode loop's thread, which calls :meth:`Row.choose` and
:meth:`Row.accept` for every token; only :meth:`Row.cancel` is called from elsewhere (the
event loop, when the client leaves). What the row produces goes to the event loop through
``send``: :class:`Out` items, then one with ``finish_reason``, or an exception. The row's
token is sampled with the other rows' (:func:`.sampling.sample_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmserve.engines.transformers_chat.logprobs import LogprobEntries
from mmserve.engines.transformers_chat.sampling import SeededSampler
from mmserve.engines.transformers_chat.textstream import IncrementalDetokenizer, StopMatcher
from mmserve.engines.types import ChatDelta, SamplingParams, TokenLogprob


@dataclass
class Prepared:
    """A request made ready for the model (off the decode loop): tokenized, with its processors."""

    inputs: Any  # BatchEncoding on the model's device: input_ids, attention_mask, pixel_values...
    prompt_ids: list[int]
    max_new_tokens: int
    prompt: str = ""
    processors: list[Any] = field(default_factory=list)  # the model's, the card's hooks, then the grammar
    image_tokens: int = 0  # video frames' included
    video_tokens: int = 0  # of image_tokens, those of video frames
    audio_tokens: int = 0

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
        # and the penalties; rows without either keep none
        self.ids: Any = None
        if prepared.processors or params.presence_penalty or params.frequency_penalty:
            self.ids = torch.empty((1, self.prompt_len + self.max_new), dtype=torch.long, device=device)
            self.ids[0, : self.prompt_len] = prepared.inputs["input_ids"][0]
        self.length = self.prompt_len
        self.count = 0
        self.eos_hit = False
        self.cancelled = False
        self.pending: list[TokenLogprob] = []
        self.last_logprobs: Any = None  # the distribution the last token was drawn from (when asked)

    @property
    def prefill_key(self) -> tuple[Any, ...] | None:
        """Rows with the same key can be prefilled together: token ids only, or ids and same-size pixel values.

        None: inputs of another shape (image sizes, grids, token types...), prefilled alone.
        """
        keys = set(self.inputs.keys()) - {"input_ids", "attention_mask"}
        if not keys:
            return ("text",)
        if keys == {"pixel_values"}:
            pixels = self.inputs["pixel_values"]
            return ("pixels", tuple(pixels.shape[1:]), pixels.dtype)
        return None

    @property
    def has_processors(self) -> bool:
        return bool(self.prepared.processors)

    def cancel(self) -> None:
        """The client left: the loop drops the row before its next step (a bool write: no lock needed)."""
        self.cancelled = True

    def process(self, logits: Any) -> Any:
        """This row's logits (1 x vocab) through its own processors: the card's hooks, then its grammar."""
        ids = self.ids[:, : self.length]
        scores = logits
        for processor in self.prepared.processors:
            scores = processor(ids, scores)
        return scores

    def generated(self) -> Any:
        """The output ids so far (1 x n); None for a row that keeps no ids (it has no penalties)."""
        return None if self.ids is None else self.ids[:, self.prompt_len : self.length]

    def accept(self, token: int, logprobs: Any = None) -> bool:
        """Record and stream ``token``; whether the row is done (end of sequence, a stop string or max_tokens)."""
        if self.ids is not None:
            self.ids[0, self.length] = token
        self.length += 1
        self.count += 1
        if token in self.eos:
            self.eos_hit = True
            return True
        if self.entries is not None and logprobs is not None:
            self.pending.append(self.entries.entry(logprobs, token, self.top))
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


def merged_delta(items: list[Out]) -> ChatDelta:
    """One delta from the row's outputs that arrived together (the last may end the row)."""
    text: list[str] = []
    logprobs: list[TokenLogprob] | None = None
    for item in items:
        text.append(item.text)
        if item.logprobs is not None:
            logprobs = (logprobs or []) + item.logprobs
    last = items[-1]
    return ChatDelta(
        text="".join(text), finish_reason=last.finish_reason, completion_tokens=last.count, logprobs=logprobs
    )
