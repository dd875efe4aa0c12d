"""A replica actor's streams in batches (runtime/actor.py ``batched``): the items that are ready go
together, the last batch says the stream ended, errors come after the items before them, and a
gateway that leaves stops the engine's stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mmserve.runtime.actor import COALESCE_S, WHOLE_ANSWER_WINDOW_S, batched


async def _collect(items: AsyncIterator[Any]) -> list[tuple[list[Any], bool]]:
    return [batch async for batch in batched(items)]


async def test_items_that_are_ready_together_go_in_one_batch_that_says_the_stream_ended() -> None:
    async def ready() -> AsyncIterator[int]:
        for i in range(5):
            yield i

    assert await _collect(ready()) == [([0, 1, 2, 3, 4], True)]


async def test_items_apart_go_in_order_each_soon_and_the_last_batch_ends_the_stream() -> None:
    gap = COALESCE_S * 5

    async def slow() -> AsyncIterator[int]:
        for i in range(3):
            yield i
            await asyncio.sleep(gap)

    loop = asyncio.get_running_loop()
    start, arrivals = loop.time(), []
    batches = []
    async for batch in batched(slow()):
        arrivals.append(loop.time() - start)
        batches.append(batch)
    assert [i for items, _ in batches for i in items] == [0, 1, 2]
    assert [ended for _, ended in batches] == [False] * (len(batches) - 1) + [True]
    assert len(batches) >= 3  # no item waited for the next one
    assert arrivals[1] < gap + COALESCE_S + 0.5  # (slack for a busy machine)


async def test_a_whole_answer_holds_its_first_items_and_goes_as_one_batch_when_short() -> None:
    """A client that waits for the whole answer: the deltas of a short one travel as one batch,
    though they came apart (a stream would send the first at once)."""
    gap = COALESCE_S * 5

    async def short() -> AsyncIterator[int]:
        for i in range(4):
            yield i
            await asyncio.sleep(gap)

    streamed = [batch async for batch in batched(short())]
    assert len(streamed) >= 3
    whole = [batch async for batch in batched(short(), 1.0, hold_first=True)]
    assert whole == [([0, 1, 2, 3], True)]


async def test_a_long_whole_answer_still_sends_what_was_made_once_per_window() -> None:
    """So the gateway meters what was generated when its client leaves before the end."""
    window = 0.05

    async def long() -> AsyncIterator[int]:
        for i in range(12):
            yield i
            await asyncio.sleep(window / 2)

    loop = asyncio.get_running_loop()
    start, batches, arrivals = loop.time(), [], []
    async for batch in batched(long(), window, hold_first=True):
        batches.append(batch)
        arrivals.append(loop.time() - start)
    assert [i for items, _ in batches for i in items] == list(range(12))
    assert 2 <= len(batches) < 12  # items before the end came, in fewer batches than items
    assert arrivals[0] >= window * 0.9  # the first waited for its window
    assert WHOLE_ANSWER_WINDOW_S > COALESCE_S


async def test_an_error_comes_after_the_items_before_it() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise ValueError("bad voice")

    got: list[Any] = []
    with pytest.raises(ValueError, match="bad voice"):
        async for batch in batched(failing()):
            got.append(batch)
    assert [i for items, _ in got for i in items] == [1, 2]
    assert all(not ended for _, ended in got)


async def test_closing_the_batches_stops_the_engine_stream() -> None:
    stopped = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.001)
        finally:
            stopped.set()

    gen = batched(endless())
    items, ended = await gen.__anext__()
    assert items and not ended
    await gen.aclose()  # the gateway left: Ray cancels (or closes) the actor's generator
    assert stopped.is_set()


async def test_cancelling_the_consumer_stops_the_engine_stream() -> None:
    stopped = asyncio.Event()
    first = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            yield 0
            first.set()
            await asyncio.sleep(3600)
            yield 1
        finally:
            stopped.set()

    async def consume() -> None:
        async for _ in batched(endless()):
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped.is_set()
