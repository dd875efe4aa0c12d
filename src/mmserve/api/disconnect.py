"""Stop a request's work when its client goes away before the response starts.

A plain (non-streaming) response is only sent when the work is done, and nothing tells
the handler that the client left meanwhile: a model would go on generating, holding its
slot, for an answer nobody reads (clients that time out and retry make it worse). So the
handler's work runs beside a watcher of the ASGI ``http.disconnect`` message, as vLLM's
``with_cancellation`` does; the first to finish wins. Once a streaming response is
running, sse-starlette watches the client itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

T = TypeVar("T")


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """``await work``, unless the client disconnects first: then it is cancelled and ClientDisconnect raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_disconnected(request))
    # The watcher's end (the client left, or its receive failed) cancels the work. Awaiting the task
    # directly (not asyncio.wait + gather: two thirds of this function's CPU per request) keeps what
    # matters: a cancelled handler cancels the work too, and either way the work has ended on return.
    watcher.add_done_callback(lambda w: _stop(w, task))
    try:
        return await task
    except asyncio.CancelledError:
        if task.cancelled() and watcher.done() and not watcher.cancelled():
            raise ClientDisconnect() from None
        raise
    finally:
        if not watcher.done():
            watcher.cancel()


def _stop(watcher: asyncio.Task[None], task: asyncio.Future[T]) -> None:
    if not watcher.cancelled():
        watcher.exception()  # retrieved: a failed receive ends the work like a disconnect
        task.cancel()


async def _disconnected(request: Request) -> None:
    # The body has been read: the next message is the disconnect, whenever it comes.
    while (await request.receive())["type"] != "http.disconnect":
        pass
