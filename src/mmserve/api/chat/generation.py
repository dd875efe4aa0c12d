"""The one engine path of every text-generation surface: chat completions, legacy completions
and responses run a :class:`~mmserve.api.chat.prepare.Prepared` request here and only shape
the result their own way.

- :func:`generate`: every choice to the end (a plain answer). A failed choice cancels the
  others; a client that leaves cancels them all; what was generated is metered either way.
- :func:`start` then :func:`events`: a stream. ``start`` takes a model slot and runs every
  prompt (errors so far are still HTTP errors, and routing may fall back); ``events`` yields
  each choice's parsed output (reasoning, content, tool calls) as it is generated, then its
  finish. :func:`release` meters and frees the slot, whether or not the stream ever ran.

Prompt tokens are counted once per prompt: the choices of one prompt (``n``) share it, and a
legacy completion with several prompts has one group of choices per prompt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field, replace

from mmserve.api.chat.prepare import Prepared
from mmserve.api.chat.shaping import prompt_details
from mmserve.api.state import AppState
from mmserve.cards import ModelCard
from mmserve.chatformat.output import ChoiceOutput, OutputEvent, OutputFormat
from mmserve.control.context import current
from mmserve.engines.base import ChatEngine
from mmserve.engines.types import ChatDelta, ChatInput, TokenLogprob


@dataclass
class Choice:
    """One choice's output so far (read for metering even when the request is cancelled midway)."""

    index: int
    output: ChoiceOutput
    group: int = 0  # the prompt it continues
    prompt_text: str | None = None  # the rendered prompt, when the engine renders one
    prompt_tokens: int = 0
    image_tokens: int = 0  # frames of videos included
    video_tokens: int = 0
    audio_tokens: int = 0
    completion_tokens: int = 0
    engine_finish: str | None = None  # the engine's finish reason ("stop" | "length")
    logprobs: list[TokenLogprob] | None = None  # every generated token's, when the request asked for them
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)  # a stream's, not yet sent

    def take_logprobs(self, delta: ChatDelta) -> None:
        if delta.logprobs and self.logprobs is not None:
            self.logprobs += delta.logprobs
            self.pending_logprobs += delta.logprobs

    def unsent_logprobs(self) -> list[TokenLogprob] | None:
        """The entries not sent yet (None when there are none): they go with the choice's next chunk."""
        entries, self.pending_logprobs = self.pending_logprobs, []
        return entries or None

    @property
    def finish_reason(self) -> str:
        """The API's: ``tool_calls`` when the answer is calls."""
        return self.output.finish_reason(self.engine_finish)

    def take(self, delta: ChatDelta) -> list[OutputEvent]:
        """Account for one engine delta; the parsed events it completes."""
        if delta.prompt_tokens is not None:  # engines may also report it late
            self.prompt_tokens = delta.prompt_tokens
        self.completion_tokens = delta.completion_tokens
        self.take_logprobs(delta)
        events = self.output.feed(delta.text, delta.completion_tokens)
        if delta.finish_reason:
            self.engine_finish = delta.finish_reason
            events += self.output.finish(delta.completion_tokens)
        return events


def _choice(index: int, fmt: OutputFormat, group: int, first: ChatDelta, logprobs: bool) -> Choice:
    return Choice(
        index,
        fmt.parser(first.prompt_text),
        group=group,
        prompt_text=first.prompt_text,
        image_tokens=first.image_tokens,
        video_tokens=first.video_tokens,
        audio_tokens=first.audio_tokens,
        logprobs=[] if logprobs else None,
    )


@dataclass
class Totals:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    image_tokens: int = 0  # frames of videos included
    reasoning_tokens: int = 0
    video_tokens: int = 0
    audio_tokens: int = 0
    video_frames: int = 0
    audio_seconds: float = 0.0
    cost: float = 0.0  # USD, once metered

    def prompt_details(self) -> dict[str, int] | None:
        """What the prompt's media cost, for ``usage.prompt_tokens_details`` (None: text only)."""
        return prompt_details(self.image_tokens, self.video_tokens, self.video_frames, self.audio_tokens)


def totals(choices: list[Choice], prepared: Prepared | None = None) -> Totals:
    """Tokens of a request: each prompt once, every choice's completion."""
    prompts: dict[int, Choice] = {}
    for c in choices:
        prompts.setdefault(c.group, c)
    return Totals(
        prompt_tokens=sum(c.prompt_tokens for c in prompts.values()),
        completion_tokens=sum(c.completion_tokens for c in choices),
        image_tokens=sum(c.image_tokens for c in prompts.values()),
        reasoning_tokens=sum(c.output.reasoning_tokens for c in choices),
        video_tokens=sum(c.video_tokens for c in prompts.values()),
        audio_tokens=sum(c.audio_tokens for c in prompts.values()),
        video_frames=prepared.video_frames if prepared else 0,
        audio_seconds=prepared.audio_seconds if prepared else 0.0,
    )


def meter(state: AppState, prepared: Prepared, endpoint: str, choices: list[Choice]) -> Totals:
    t = totals(choices, prepared)
    t.cost = state.meter.record(
        prepared.card,
        endpoint,
        input_tokens=t.prompt_tokens,
        output_tokens=t.completion_tokens,
        image_tokens=t.image_tokens,
        audio_seconds=t.audio_seconds,
    ).cost
    return t


# ---------------------------------------------------------------------- plain answers


@dataclass
class Generated:
    card: ModelCard
    choices: list[Choice]
    totals: Totals


async def generate(state: AppState, prepared: Prepared, endpoint: str) -> Generated:
    card, fmt = prepared.card, prepared.features.output
    inputs = [replace(inp, streamed=False) for inp in prepared.inputs]  # the client waits for whole answers
    slots: list[Choice | None] = [None] * len(inputs)
    failure: BaseException | None = None
    try:
        async with state.runtime.deployment(card).acquire() as engine:
            assert isinstance(engine, ChatEngine)
            if len(inputs) == 1:  # one choice (most requests): in this task, not a group's
                try:
                    await _collect(engine, inputs[0], 0, prepared.group(0), fmt, slots)
                except Exception as e:
                    failure = e
            else:
                try:  # a failed choice cancels the others: none may run on once the slot is released
                    async with asyncio.TaskGroup() as group:
                        for i, inp in enumerate(inputs):
                            group.create_task(_collect(engine, inp, i, prepared.group(i), fmt, slots))
                except BaseExceptionGroup as failed:
                    failure = failed.exceptions[0]
    except asyncio.CancelledError:  # the client left: what was generated is still used
        started = [c for c in slots if c is not None]
        if started:
            meter(state, prepared, endpoint, started)
        raise
    if failure is not None:
        raise failure
    asked = prepared.inputs[0].params.logprobs
    choices = [
        c or Choice(i, fmt.parser(), group=prepared.group(i), logprobs=[] if asked else None)
        for i, c in enumerate(slots)
    ]
    for c in choices:
        c.output.finish(c.completion_tokens)
    return Generated(card, choices, meter(state, prepared, endpoint, choices))


async def _collect(
    engine: ChatEngine, inp: ChatInput, index: int, group: int, fmt: OutputFormat, into: list[Choice | None]
) -> None:
    """Run one choice, keeping what it produced in ``into[index]`` as it comes."""
    async with aclosing(engine.generate(inp)) as deltas:
        async for delta in deltas:
            choice = into[index]
            if choice is None:  # the first delta carries the prompt
                choice = into[index] = _choice(index, fmt, group, delta, inp.params.logprobs)
            choice.take_logprobs(delta)
            choice.output.feed(delta.text, delta.completion_tokens)
            if delta.prompt_tokens is not None:
                choice.prompt_tokens = delta.prompt_tokens
            choice.completion_tokens = delta.completion_tokens
            if delta.finish_reason:
                choice.engine_finish = delta.finish_reason


# ---------------------------------------------------------------------- streams


@dataclass
class Piece:
    """Parsed output of one choice: reasoning, content or a complete tool call."""

    index: int
    event: OutputEvent


@dataclass
class Finish:
    """A choice is done; ``reason`` is the API's finish reason."""

    index: int
    reason: str


@dataclass
class Generation:
    """A stream whose generations have begun (prompts processed): from here on, no fallback."""

    prepared: Prepared
    endpoint: str
    gens: list[AsyncGenerator[ChatDelta, None]]
    firsts: list[ChatDelta]  # each generation's first delta (its prompt), already taken from it
    choices: list[Choice]
    stack: AsyncExitStack
    metered: bool = field(default=False)
    cost: float = 0.0  # USD, once metered

    @property
    def card(self) -> ModelCard:
        return self.prepared.card

    @property
    def totals(self) -> Totals:
        return totals(self.choices, self.prepared)


async def start(state: AppState, prepared: Prepared, endpoint: str) -> Generation:
    card = prepared.card
    stack = AsyncExitStack()
    try:
        engine = await stack.enter_async_context(state.runtime.deployment(card).acquire())
        assert isinstance(engine, ChatEngine)
        gens = [engine.generate(inp) for inp in prepared.inputs]
        for g in gens:
            stack.push_async_callback(g.aclose)
        # prompts processed (errors so far are 4xx/5xx), all at once: one after the other, a
        # choice's prompt would queue behind the whole generation of the one before it. One
        # choice needs no task (a task costs a turn of the event loop: see api/chat/media.py).
        deltas = [await anext(gens[0])] if len(gens) == 1 else await _firsts(gens)
    except BaseException:
        await stack.aclose()
        raise
    fmt = prepared.features.output
    asked = prepared.inputs[0].params.logprobs
    choices = [_choice(i, fmt, prepared.group(i), first, asked) for i, first in enumerate(deltas)]
    for choice, first in zip(choices, deltas, strict=True):  # metered even if the stream never runs
        choice.prompt_tokens, choice.completion_tokens = first.prompt_tokens or 0, first.completion_tokens
    return Generation(prepared, endpoint, gens, deltas, choices, stack)


async def _firsts(gens: list[AsyncGenerator[ChatDelta, None]]) -> list[ChatDelta]:
    """Every generation's first delta, asked at once; the first failure is raised, the others cancelled."""
    try:
        async with asyncio.TaskGroup() as group:
            firsts = [group.create_task(anext(g)) for g in gens]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in firsts]


async def events(state: AppState, gen: Generation) -> AsyncGenerator[Piece | Finish, None]:
    """The stream's parsed output, as the choices produce it; raises what the engine raises.

    Closes the generations at its end; the stream is metered once it is over (or by :func:`release`).
    """
    ctx, first_content = current(), True
    async with gen.stack:
        try:
            async with aclosing(_chain(enumerate(gen.firsts), _merge(gen.gens))) as merged:
                async for i, delta in merged:
                    choice = gen.choices[i]
                    for event in choice.take(delta):
                        if first_content:
                            first_content = False
                            state.metrics.ttft.labels(gen.card.id).observe(time.perf_counter() - ctx.started)
                        yield Piece(i, event)
                    if delta.finish_reason:
                        yield Finish(i, choice.finish_reason)
            _meter_once(state, gen)
        finally:  # failed or the client left: what was generated is still used
            _meter_once(state, gen)


async def release(state: AppState, gen: Generation) -> None:
    """Meter the stream and free its slot: after its end, or when it never ran (the client left first)."""
    _meter_once(state, gen)
    await gen.stack.aclose()


def _meter_once(state: AppState, gen: Generation) -> None:
    if not gen.metered:
        gen.metered = True
        gen.cost = meter(state, gen.prepared, gen.endpoint, gen.choices).cost


async def _chain(
    firsts: Iterable[tuple[int, ChatDelta]], rest: AsyncGenerator[tuple[int, ChatDelta], None]
) -> AsyncGenerator[tuple[int, ChatDelta], None]:
    for item in firsts:
        yield item
    async with aclosing(rest):
        async for item in rest:
            yield item


async def _merge(gens: list[AsyncGenerator[ChatDelta, None]]) -> AsyncGenerator[tuple[int, ChatDelta], None]:
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
