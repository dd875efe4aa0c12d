"""Chat completions: route to a card, prepare for it, run the engine, shape the answer.

A routed request (``auto`` or a router alias) falls back to the next candidate when one
fails before any output was sent: for a plain response, anywhere before it is returned;
for a stream, before its first event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field
from typing import Any

from mmserve.api.chat import shaping
from mmserve.api.chat.prepare import Prepared, needs_of, prepare
from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.api.state import AppState
from mmserve.api.streaming import Stream, error_event
from mmserve.cards import ModelCard
from mmserve.chatformat.output import ChoiceOutput, OutputFormat
from mmserve.control.context import current
from mmserve.engines.base import ChatEngine
from mmserve.engines.types import ChatDelta, ChatInput, TokenLogprob

log = logging.getLogger("mmserve.chat")
ENDPOINT = "chat.completions"


@dataclass
class _Choice:
    index: int
    output: ChoiceOutput
    finish_reason: str | None = None
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] | None = None  # a list when the request asked for them


@dataclass
class _Collected:
    """What one choice has produced so far: read for metering even when the request is cancelled midway."""

    choice: _Choice | None = None  # made from the first delta, which carries the prompt
    prompt_tokens: int = 0
    image_tokens: int = 0


@dataclass
class _Started:
    """A stream whose generations have begun (prompt processed): from here on, no fallback."""

    card: ModelCard
    gens: list[AsyncGenerator[ChatDelta, None]]
    firsts: list[ChatDelta]
    prepared: Prepared
    stack: AsyncExitStack
    completion: list[int] = field(default_factory=list)  # tokens per choice so far
    prompt_tokens: int = 0
    metered: bool = False


class ChatService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    # ------------------------------------------------------------------ entry points

    async def complete(self, req: ChatCompletionRequest) -> dict[str, Any]:
        return await self.state.router.serve(req.model, needs_of(req), lambda card: self._complete(req, card))

    async def stream(self, req: ChatCompletionRequest) -> Stream:
        """Start the generation(s) now, so that early failures are HTTP errors, then stream SSE data."""
        started = await self.state.router.serve(req.model, needs_of(req), lambda card: self._start(req, card))
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return Stream(self._sse(started, include_usage), lambda: self._release(started))

    async def _release(self, started: _Started) -> None:
        """Meter the stream and free its slot: after its end, or when it never ran (the client left first)."""
        self._meter_stream(started)
        await started.stack.aclose()

    def _meter_stream(self, started: _Started) -> None:
        """Record what the stream generated so far, once."""
        if not started.metered:
            started.metered = True
            self.state.meter.record(
                started.card,
                ENDPOINT,
                input_tokens=started.prompt_tokens,
                output_tokens=sum(started.completion),
                image_tokens=started.firsts[0].image_tokens,
            )

    async def _complete(self, req: ChatCompletionRequest, card: ModelCard) -> dict[str, Any]:
        prepared = await prepare(self.state, req, card)
        dep = self.state.runtime.deployment(card)
        fmt = prepared.features.output
        collected = [_Collected() for _ in prepared.inputs]
        failure: BaseException | None = None
        try:
            async with dep.acquire() as engine:
                assert isinstance(engine, ChatEngine)
                try:  # a failed choice cancels the others: none may run on once the slot is released
                    async with asyncio.TaskGroup() as group:
                        for i, inp in enumerate(prepared.inputs):
                            group.create_task(self._collect(engine, inp, i, fmt, collected[i]))
                except BaseExceptionGroup as failed:
                    failure = failed.exceptions[0]
        except asyncio.CancelledError:  # the client left: what was generated is still used
            if any(c.choice is not None for c in collected):
                self._meter(card, collected)
            raise
        if failure is not None:
            raise failure
        asked = prepared.inputs[0].params.logprobs
        choices = [
            c.choice or _Choice(i, fmt.parser(), logprobs=[] if asked else None) for i, c in enumerate(collected)
        ]
        for c in choices:
            c.output.finish(c.completion_tokens)
        prompt_tokens, completion = self._meter(card, collected)
        return {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": card.id,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": c.index,
                    "message": shaping.message(c.output),
                    "logprobs": shaping.logprobs(c.logprobs),
                    "finish_reason": c.output.finish_reason(c.finish_reason),
                }
                for c in choices
            ],
            "usage": shaping.usage(prompt_tokens, completion, sum(c.output.reasoning_tokens for c in choices)),
        }

    async def _start(self, req: ChatCompletionRequest, card: ModelCard) -> _Started:
        prepared = await prepare(self.state, req, card)
        dep = self.state.runtime.deployment(card)
        stack = AsyncExitStack()
        try:
            engine = await stack.enter_async_context(dep.acquire())
            assert isinstance(engine, ChatEngine)
            gens = [engine.generate(inp) for inp in prepared.inputs]
            for g in gens:
                stack.push_async_callback(g.aclose)
            # prompts processed (errors so far are 4xx/5xx), all at once: one after the other, a
            # choice's prompt would queue behind the whole generation of the one before it
            failure: BaseException | None = None
            try:
                async with asyncio.TaskGroup() as group:
                    firsts = [group.create_task(_first(g)) for g in gens]
            except BaseExceptionGroup as failed:
                failure = failed.exceptions[0]
            if failure is not None:
                raise failure
        except BaseException:
            await stack.aclose()
            raise
        done = [f.result() for f in firsts]
        completion = [f.completion_tokens for f in done]
        return _Started(card, gens, done, prepared, stack, completion, done[0].prompt_tokens or 0)

    async def _sse(self, started: _Started, include_usage: bool) -> AsyncGenerator[str, None]:
        card, gens, completion = started.card, started.gens, started.completion
        outputs = [started.prepared.features.output.parser(f.prompt_text) for f in started.firsts]
        cid, created = _completion_id(), int(time.time())
        ctx = current()

        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> str:
            body: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": card.id,
                "system_fingerprint": None,
                "choices": choices,
            }
            if include_usage:
                body["usage"] = usage
            return json.dumps(body, ensure_ascii=False)

        first_content = True
        # log-probabilities not sent yet, per choice: they go with the choice's next chunk
        pending: list[list[TokenLogprob] | None] = [
            [] if started.prepared.inputs[0].params.logprobs else None for _ in gens
        ]

        def choice(i: int, delta: dict[str, Any], finish_reason: str | None = None) -> str:
            entries = pending[i]
            if entries:
                pending[i] = []
            # a chunk without tokens of its own (the role, a tool call's second half) has null logprobs
            body = {
                "index": i,
                "delta": delta,
                "logprobs": shaping.logprobs(entries or None),
                "finish_reason": finish_reason,
            }
            return chunk([body])

        async with started.stack:
            try:
                for i in range(len(gens)):
                    yield choice(i, {"role": "assistant", "content": ""})
                async for i, delta in _merge(gens):
                    completion[i] = delta.completion_tokens
                    if delta.prompt_tokens is not None:  # engines may also report it late
                        started.prompt_tokens = delta.prompt_tokens
                    waiting = pending[i]
                    if delta.logprobs and waiting is not None:
                        waiting += delta.logprobs
                    events = outputs[i].feed(delta.text, delta.completion_tokens)
                    if delta.finish_reason:
                        events += outputs[i].finish(delta.completion_tokens)
                    for event in events:
                        for d in shaping.deltas(event):
                            if first_content:
                                first_content = False
                                self.state.metrics.ttft.labels(card.id).observe(time.perf_counter() - ctx.started)
                            yield choice(i, d)
                    if delta.finish_reason:
                        yield choice(i, {}, outputs[i].finish_reason(delta.finish_reason))
                self._meter_stream(started)
                if include_usage:
                    reasoning = sum(o.reasoning_tokens for o in outputs)
                    yield chunk([], shaping.usage(started.prompt_tokens, sum(completion), reasoning))
            except Exception as e:
                yield error_event(e, log, f"stream for '{card.id}'")
            finally:  # failed or the client left: what was generated is still used
                self._meter_stream(started)
            yield "[DONE]"

    def _meter(self, card: ModelCard, collected: list[_Collected]) -> tuple[int, int]:
        """Record the request's usage; returns its prompt and completion tokens."""
        first = next((c for c in collected if c.choice is not None), _Collected())
        completion = sum(c.choice.completion_tokens for c in collected if c.choice is not None)
        self.state.meter.record(
            card, ENDPOINT, input_tokens=first.prompt_tokens, output_tokens=completion, image_tokens=first.image_tokens
        )
        return first.prompt_tokens, completion

    @staticmethod
    async def _collect(engine: ChatEngine, inp: ChatInput, index: int, fmt: OutputFormat, into: _Collected) -> None:
        """Run one choice, keeping its output, prompt tokens and image tokens in ``into`` as they come."""
        async with aclosing(engine.generate(inp)) as deltas:
            async for delta in deltas:
                if into.choice is None:  # the first delta carries the prompt
                    into.choice = _Choice(index, fmt.parser(delta.prompt_text))
                    into.choice.logprobs = [] if inp.params.logprobs else None
                    into.image_tokens = delta.image_tokens
                if delta.logprobs and into.choice.logprobs is not None:
                    into.choice.logprobs += delta.logprobs
                if delta.prompt_tokens is not None:
                    into.prompt_tokens = delta.prompt_tokens
                into.choice.output.feed(delta.text, delta.completion_tokens)
                into.choice.completion_tokens = delta.completion_tokens
                if delta.finish_reason:
                    into.choice.finish_reason = delta.finish_reason


async def _first(gen: AsyncGenerator[ChatDelta, None]) -> ChatDelta:
    return await anext(gen)


async def _merge(gens: list[AsyncGenerator[ChatDelta, None]]) -> AsyncIterator[tuple[int, ChatDelta]]:
    """Interleave n streams as their deltas arrive."""
    if len(gens) == 1:
        async for d in gens[0]:
            yield 0, d
        return
    queue: asyncio.Queue[tuple[int, ChatDelta | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, g: AsyncIterator[ChatDelta]) -> None:
        try:
            async for d in g:
                await queue.put((i, d))
            await queue.put((i, None))
        except BaseException as e:
            await queue.put((i, e))

    tasks = [asyncio.create_task(pump(i, g)) for i, g in enumerate(gens)]
    try:
        remaining = len(gens)
        while remaining:
            i, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for t in tasks:
            t.cancel()
        # wait until every pump has left its generator: closing a generator still running raises
        await asyncio.gather(*tasks, return_exceptions=True)


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"
