"""Chat completions: route to a card, prepare for it, run it (:mod:`~mmserve.api.chat.generation`), shape the answer.

A routed request (``auto`` or a router alias) falls back to the next candidate when one
fails before any output was sent: for a plain response, anywhere before it is returned;
for a stream, before its first event.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from mmserve.api.chat import generation, shaping
from mmserve.api.chat.generation import Generation, Piece
from mmserve.api.chat.prepare import needs_of, prepare
from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.api.state import AppState
from mmserve.api.streaming import Stream, error_event
from mmserve.cards import ModelCard

log = logging.getLogger("mmserve.chat")
ENDPOINT = "chat.completions"


class ChatService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def complete(self, req: ChatCompletionRequest) -> dict[str, Any]:
        return await self.state.router.serve(req.model, needs_of(req), lambda card: self._complete(req, card))

    async def stream(self, req: ChatCompletionRequest) -> Stream:
        """Start the generation(s) now, so that early failures are HTTP errors, then stream SSE data."""
        started = await self.state.router.serve(req.model, needs_of(req), lambda card: self._start(req, card))
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return Stream(self._sse(started, include_usage), lambda: generation.release(self.state, started))

    async def _complete(self, req: ChatCompletionRequest, card: ModelCard) -> dict[str, Any]:
        done = await generation.generate(self.state, await prepare(self.state, req, card), ENDPOINT)
        t = done.totals
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
                    "finish_reason": c.finish_reason,
                }
                for c in done.choices
            ],
            "usage": shaping.usage(
                t.prompt_tokens, t.completion_tokens, t.reasoning_tokens, t.prompt_details(), cost=t.cost
            ),
        }

    async def _start(self, req: ChatCompletionRequest, card: ModelCard) -> Generation:
        return await generation.start(self.state, await prepare(self.state, req, card), ENDPOINT)

    async def _sse(self, started: Generation, include_usage: bool) -> AsyncGenerator[str, None]:
        card = started.card
        cid, created = _completion_id(), int(time.time())

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

        def choice(i: int, delta: dict[str, Any], finish_reason: str | None = None) -> str:
            # log-probabilities go with the choice's next chunk; one without tokens of its own
            # (the role, a tool call's second half) has null logprobs
            entries = started.choices[i].unsent_logprobs()
            body = {"index": i, "delta": delta, "logprobs": shaping.logprobs(entries), "finish_reason": finish_reason}
            return chunk([body])

        try:
            for i in range(len(started.choices)):
                yield choice(i, {"role": "assistant", "content": ""})
            async for item in generation.events(self.state, started):
                if isinstance(item, Piece):
                    for d in shaping.deltas(item.event):
                        yield choice(item.index, d)
                else:
                    yield choice(item.index, {}, item.reason)
            if include_usage:
                t = started.totals
                usage = shaping.usage(
                    t.prompt_tokens, t.completion_tokens, t.reasoning_tokens, t.prompt_details(), cost=started.cost
                )
                yield chunk([], usage)
        except Exception as e:
            yield error_event(e, log, f"stream for '{card.id}'")
        yield "[DONE]"


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"
