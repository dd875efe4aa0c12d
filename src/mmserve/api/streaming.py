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
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from mmserve.api.errors import log_failure
from mmserve.errors import error_body


@dataclass
class Stream:
    """A started stream: its chunks, and ``release`` (idempotent) to free what it holds and meter it."""

    chunks: AsyncGenerator[Any, None]
    release: Callable[[], Awaitable[None]]

    async def close(self) -> None:
        """Run the generator's own cleanup (if it is suspended mid-stream), then ``release``."""
        await self.chunks.aclose()
        await self.release()


def error_event(e: Exception, logger: logging.Logger, what: str) -> str:
    """The last data of a stream that failed midway: the error envelope, never a traceback (the log has it)."""
    log_failure(logger, e, what)
    return json.dumps(error_body(e))


class _ClosesStream:
    """Mixin for a streaming response over a :class:`Stream`: once the response is over, close it."""

    def __init__(self, stream: Stream, **kwargs: Any) -> None:
        super().__init__(stream.chunks, **kwargs)  # type: ignore[call-arg]
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            # shielded: a response cancelled by a shutdown still frees its slot and records its usage
            await asyncio.shield(self._stream.close())


class ReleasingEventSourceResponse(_ClosesStream, EventSourceResponse):
    """Server-sent events from a :class:`Stream`."""

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        # sse-starlette wraps every event's send in anyio.move_on_after(send_timeout), even with no
        # timeout: a cancel scope and an async-library lookup per token, ~4% of the server's time
        # streaming vLLM's tokens at c16 (py-spy). mmserve sets no send timeout (a client that stops
        # reading is a disconnect, seen by the stream): the event goes straight to send.
        if self.send_timeout is None:
            await send(message)
        else:
            await super()._send_with_timeout(send, message)


class ReleasingStreamingResponse(_ClosesStream, StreamingResponse):
    """Raw bytes from a :class:`Stream`."""
