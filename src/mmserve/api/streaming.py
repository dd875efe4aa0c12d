"""Streaming responses that always release what their stream holds.

A streamed answer is started before its response (a model slot acquired, the prompt run)
so that early failures are still HTTP errors. Its generator releases the slot and meters
the usage when it ends, but only if it ever ran: a client that disconnects between the
response's start and its first chunk leaves an async generator that was never started,
whose ``finally`` never runs, and Starlette / sse-starlette do not close such a body. The
slot would be held and the usage lost. These responses close the stream and call its
``release`` whatever happened, once the response is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


@dataclass
class Stream:
    """A started stream: its chunks, and ``release`` (idempotent) to free what it holds and meter it."""

    chunks: AsyncGenerator[Any, None]
    release: Callable[[], Awaitable[None]]

    async def close(self) -> None:
        """Run the generator's own cleanup (if it is suspended mid-stream), then ``release``."""
        await self.chunks.aclose()
        await self.release()


async def _closed(stream: Stream) -> None:
    # shielded: a response cancelled by a shutdown still frees its slot and records its usage
    await asyncio.shield(stream.close())


class ReleasingEventSourceResponse(EventSourceResponse):
    def __init__(self, stream: Stream, **kwargs: Any) -> None:
        super().__init__(stream.chunks, **kwargs)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await _closed(self._stream)


class ReleasingStreamingResponse(StreamingResponse):
    def __init__(self, stream: Stream, **kwargs: Any) -> None:
        super().__init__(stream.chunks, **kwargs)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await _closed(self._stream)
