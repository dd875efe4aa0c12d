"""The Responses API on chat's engine path: convert, route, prepare and run as chat does, shape as Responses.

A request becomes the chat request it amounts to (:mod:`~mmserve.api.responses.convert`),
runs through the same routing, preparation (images, tools, schemas, reasoning switches) and
:mod:`~mmserve.api.chat.generation` as ``/v1/chat/completions``, and is shaped as a response
(:mod:`~mmserve.api.responses.shaping`). With ``store`` (OpenAI's default) the response and
its conversation are kept (:mod:`~mmserve.api.responses.store`) for ``previous_response_id``,
``GET`` and ``DELETE``, per API key, for ``responses_ttl_s``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mmserve.api.chat import generation
from mmserve.api.chat.generation import Generated, Generation, Piece
from mmserve.api.chat.prepare import needs_of, prepare
from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.api.responses.convert import ParamMap, parse_items, to_chat
from mmserve.api.responses.protocol import ResponseRequest
from mmserve.api.responses.shaping import EventStream, logprob_entries, new_id, output_items, usage
from mmserve.api.responses.store import ResponseStore, StoredResponse
from mmserve.api.state import AppState
from mmserve.api.streaming import Stream, error_event
from mmserve.cards import ModelCard
from mmserve.control.context import principal
from mmserve.errors import InvalidRequestError, MMServeError, NotFoundError

log = logging.getLogger("mmserve.responses")
ENDPOINT = "responses"
T = TypeVar("T")
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


@dataclass
class _Plan:
    chat: ChatCompletionRequest
    params: ParamMap
    context: list[dict[str, Any]]  # the conversation's input items, to store with the response


class ResponsesService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.store = ResponseStore(state.db, ttl_s=state.settings.responses_ttl_s)

    # ------------------------------------------------------------------ create

    async def create(self, req: ResponseRequest) -> dict[str, Any]:
        owner = principal().key_id
        plan = await self._plan(req, owner)
        done: Generated = await self._serve(req, plan, lambda c: self._generate(plan, c))
        choice = done.choices[0]
        incomplete = choice.engine_finish == "length"
        t = done.totals
        body = _body(
            req,
            new_id("resp"),
            done.card.id,
            status="incomplete" if incomplete else "completed",
            output=output_items(choice.output, incomplete, logprob_entries(choice.logprobs)),
            usage=usage(t.prompt_tokens, t.completion_tokens, t.reasoning_tokens),
        )
        if req.store:
            await self.store.put(body, plan.context, owner=owner)
        return body

    async def stream(self, req: ResponseRequest) -> Stream:
        """Start the generation now (early failures are HTTP errors), then stream the events."""
        owner = principal().key_id
        plan = await self._plan(req, owner)
        started: Generation = await self._serve(req, plan, lambda c: self._start(plan, c))
        body = _body(req, new_id("resp"), started.card.id, status="in_progress", output=[], usage=None)
        return Stream(self._sse(req, plan, started, body, owner), lambda: generation.release(self.state, started))

    async def _generate(self, plan: _Plan, card: ModelCard) -> Generated:
        return await generation.generate(self.state, await prepare(self.state, plan.chat, card), ENDPOINT)

    async def _start(self, plan: _Plan, card: ModelCard) -> Generation:
        return await generation.start(self.state, await prepare(self.state, plan.chat, card), ENDPOINT)

    async def _serve(self, req: ResponseRequest, plan: _Plan, attempt: Callable[[ModelCard], Awaitable[T]]) -> T:
        try:
            return await self.state.router.serve(req.model, needs_of(plan.chat), attempt)
        except MMServeError as e:  # chat names chat fields: name the Responses request's
            plan.params.apply(e)
            raise

    async def _sse(
        self, req: ResponseRequest, plan: _Plan, started: Generation, body: dict[str, Any], owner: str | None
    ) -> AsyncGenerator[dict[str, str], None]:
        events = EventStream(body)
        for e in events.begin():
            yield _sse(e)
        try:
            async for item in generation.events(self.state, started):
                if isinstance(item, Piece):
                    entries = logprob_entries(started.choices[0].unsent_logprobs())
                    for e in events.piece(item.event, entries):
                        yield _sse(e)
            incomplete = started.choices[0].engine_finish == "length"
            for e in events.finish(incomplete):
                yield _sse(e)
            t = started.totals
            final = {
                **body,
                "status": "incomplete" if incomplete else "completed",
                "output": events.items,
                "usage": usage(t.prompt_tokens, t.completion_tokens, t.reasoning_tokens),
                "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
                "completed_at": None if incomplete else int(time.time()),
            }
            if req.store:
                await self.store.put(final, plan.context, owner=owner)
            yield _sse(events.event("response.incomplete" if incomplete else "response.completed", response=final))
        except Exception as e:
            envelope = json.loads(error_event(e, log, f"response stream for '{started.card.id}'"))["error"]
            error = {"code": envelope["code"] or envelope["type"], "message": envelope["message"]}
            failed = {**body, "status": "failed", "output": events.items, "error": error}
            yield _sse(events.event("response.failed", response=failed))
            # an error event that also carries the error envelope: the SDKs raise APIError on it, as for chat
            yield _sse(events.event("error", **error, param=envelope["param"], error=envelope))

    async def _plan(self, req: ResponseRequest, owner: str | None) -> _Plan:
        refuse_unsupported(req)
        history: list[dict[str, Any]] = []
        if req.previous_response_id is not None:
            stored = await self._stored(req.previous_response_id, owner, param="previous_response_id")
            history = [*stored.context, *stored.body.get("output", [])]
        chat, params = await to_chat(self.state, req, parse_items(history, param="previous_response_id"))
        if isinstance(req.input, str):
            mine: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": req.input}]
        else:
            mine = [item.model_dump(by_alias=True, exclude_none=True) for item in req.input or []]
        return _Plan(chat, params, [_with_id(item) for item in [*history, *mine]])

    # ------------------------------------------------------------------ stored responses

    async def retrieve(self, response_id: str) -> dict[str, Any]:
        return (await self._stored(response_id, principal().key_id)).body

    async def delete(self, response_id: str) -> dict[str, Any]:
        if not await self.store.delete(response_id, owner=principal().key_id):
            raise _not_found(response_id, "response_id")
        return {"id": response_id, "object": "response", "deleted": True}

    async def input_items(self, response_id: str, *, after: str | None, limit: int, order: str) -> dict[str, Any]:
        items = (await self._stored(response_id, principal().key_id)).context
        if order == "desc":
            items = items[::-1]
        if after is not None:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise InvalidRequestError(f"'{after}' is not an input item of this response.", param="after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }

    async def _stored(self, response_id: str, owner: str | None, *, param: str = "response_id") -> StoredResponse:
        stored = await self.store.get(response_id, owner=owner)
        if stored is None:
            raise _not_found(response_id, param)
        return stored


def refuse_unsupported(req: ResponseRequest) -> None:
    """Fields whose meaning mmserve cannot honour: a 400 naming them, never silently ignored."""

    def refuse(param: str, message: str) -> InvalidRequestError:
        return InvalidRequestError(message, param=param, code="unsupported_parameter")

    if req.background:
        raise refuse("background", "Background responses are not supported: leave out background (or false).")
    if req.conversation is not None:
        raise refuse("conversation", "Conversations are not supported: continue with previous_response_id.")
    if req.prompt is not None:
        raise refuse("prompt", "Stored prompt templates are not supported: send input and instructions.")
    if req.truncation == "auto":
        raise refuse(
            "truncation",
            "truncation 'auto' is not supported: input beyond the model's context is refused (a 400) instead.",
        )
    if req.text is not None and req.text.verbosity not in (None, "medium"):
        raise refuse("text.verbosity", "The models served here do not follow verbosity: leave it out.")


def _body(
    req: ResponseRequest, rid: str, model: str, *, status: str, output: list[Any], usage: dict[str, Any] | None
) -> dict[str, Any]:
    incomplete = status == "incomplete"
    fmt = req.text.format.model_dump(by_alias=True, exclude_none=True) if req.text else {"type": "text"}
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "metadata": req.metadata or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": req.parallel_tool_calls is not False,
        "previous_response_id": req.previous_response_id,
        "reasoning": {
            "effort": req.reasoning.effort if req.reasoning else None,
            "summary": req.reasoning.summary if req.reasoning else None,
        },
        "store": req.store,
        "temperature": req.temperature if req.temperature is not None else 1.0,
        "text": {"format": fmt},
        "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
        "tools": req.tools or [],
        "top_p": req.top_p if req.top_p is not None else 1.0,
        "top_logprobs": req.top_logprobs,
        "truncation": "disabled",
        "usage": usage,
        "user": req.user,
    }


def _with_id(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as stored and listed: with an id, and message content as a list of parts."""
    item = dict(item)
    kind = item.get("type") or "message"
    item["type"] = kind
    if not item.get("id"):
        item["id"] = new_id(_ID_PREFIX.get(kind, "item"))
    if kind == "message" and isinstance(item.get("content"), str):
        part = "output_text" if item.get("role") == "assistant" else "input_text"
        item["content"] = [{"type": part, "text": item["content"]}]
    return item


def _not_found(response_id: str, param: str) -> NotFoundError:
    return NotFoundError(
        f"No stored response '{response_id[:100]}' (responses are kept for store: true requests, by the "
        "API key that made them, until they expire).",
        param=param,
        code="response_not_found",
    )


def _sse(event: dict[str, Any]) -> dict[str, str]:
    return {"event": event["type"], "data": json.dumps(event, ensure_ascii=False)}
