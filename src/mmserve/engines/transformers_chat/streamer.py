"""One ``generate()`` call's streamer and stopping criterion, run in the engine's worker thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from mmserve.engines.transformers_chat.logprobs import LogprobEntries
from mmserve.engines.transformers_chat.sampling import SeededSampler
from mmserve.engines.transformers_chat.textstream import IncrementalDetokenizer, StopMatcher
from mmserve.engines.types import ChatInput, TokenLogprob


class GenerationStream:
    """Streamer + stopping criterion for one generate() call, run in the worker thread.

    Detokenizes and applies stop strings in the worker, and hands text deltas to the
    event loop through ``call_soon_threadsafe``. ``cancelled`` stops generation at the next
    step (client gone); a stop string or EOS stops it too.
    """

    def __init__(
        self,
        tokenizer: Any,
        eos: list[int],
        request: ChatInput,
        max_new_tokens: int,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
        *,
        sampler: SeededSampler,
        entries: LogprobEntries | None = None,
    ) -> None:
        self.request = request
        self.loop, self.queue = loop, queue
        self.cancelled = threading.Event()
        self.detok = IncrementalDetokenizer(lambda ids: tokenizer.decode(ids, skip_special_tokens=True))
        self.stops = StopMatcher(request.params.stop)
        self.eos = set() if request.params.ignore_eos else set(eos)
        self.sampler = sampler
        self.entries = entries  # set when the request asked for logprobs
        self.top = request.params.top_logprobs
        self.pending: list[TokenLogprob] = []
        self.max_new = max_new_tokens
        self.count = 0
        self.eos_hit = False
        self.tail = ""
        self._prompt_seen = False

    # BaseStreamer protocol
    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt ids
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            if self.eos_hit or self.stops.stopped:
                return
            self.count += 1
            if token in self.eos:
                self.eos_hit = True
                return
            if self.entries is not None and self.sampler.last_logprobs is not None:
                self.pending.append(self.entries.entry(self.sampler.last_logprobs, token, self.top))
            text = self.stops.push(self.detok.push(token))
            if text:
                self._send((text, self.count, self.take_logprobs()))

    def take_logprobs(self) -> list[TokenLogprob] | None:
        """The entries not sent yet (None when the request did not ask for them)."""
        if self.entries is None:
            return None
        out, self.pending = self.pending, []
        return out

    def end(self) -> None:
        self.tail = self.stops.push(self.detok.flush()) + self.stops.flush()

    # StoppingCriteria protocol
    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = self.cancelled.is_set() or self.stops.stopped or self.eos_hit
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    @property
    def finish_reason(self) -> str:
        if self.eos_hit or self.stops.stopped:
            return "stop"
        return "length" if self.count >= self.max_new else "stop"

    def finish(self) -> None:
        self._send(None)

    def fail(self, exc: BaseException) -> None:
        self._send(exc)

    def _send(self, item: Any) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
