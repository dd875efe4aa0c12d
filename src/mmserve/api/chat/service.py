"""Chat completions: validate against the card, ingest images, run the engine, shape the answer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from mmserve.api.chat import shaping
from mmserve.api.chat.features import ChatFeatures, resolve_features
from mmserve.api.chat.protocol import ChatCompletionRequest, ImagePart, Message
from mmserve.api.errors import (
    InvalidRequestError,
    MMServeError,
    ModelCapabilityError,
    error_body,
)
from mmserve.api.state import AppState
from mmserve.catalog.schema import ModelCard
from mmserve.chatformat.output import ChoiceOutput, OutputFormat
from mmserve.control.routing import Needs
from mmserve.engines.base import ChatEngine, card_image_input_size
from mmserve.engines.types import ChatDelta, ChatInput, ChatMessage, ChatPart, ImageInputSize, SamplingParams
from mmserve.media.ingest import ImageRef

log = logging.getLogger("mmserve.chat")


@dataclass
class _Choice:
    index: int
    output: ChoiceOutput
    finish_reason: str | None = None
    completion_tokens: int = 0


class ChatService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    # ------------------------------------------------------------------ entry points

    async def complete(self, req: ChatCompletionRequest) -> dict[str, Any]:
        card, inputs, features = await self._prepare(req)
        dep = self.state.runtime.deployment(card)
        async with dep.acquire() as engine:
            assert isinstance(engine, ChatEngine)
            results = await asyncio.gather(
                *(self._collect(engine, inp, i, features.output) for i, inp in enumerate(inputs))
            )
        prompt_tokens = results[0][1]
        choices = [c for c, _ in results]
        completion = sum(c.completion_tokens for c in choices)
        self.state.meter.record(card, "chat.completions", input_tokens=prompt_tokens, output_tokens=completion)
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
                    "logprobs": None,
                    "finish_reason": c.output.finish_reason(c.finish_reason),
                }
                for c in choices
            ],
            "usage": shaping.usage(prompt_tokens, completion, sum(c.output.reasoning_tokens for c in choices)),
        }

    async def stream(self, req: ChatCompletionRequest) -> AsyncIterator[str]:
        """Start the generation(s) now, so that early failures are HTTP errors, then stream SSE data."""
        card, inputs, features = await self._prepare(req)
        dep = self.state.runtime.deployment(card)
        stack = AsyncExitStack()
        try:
            engine = await stack.enter_async_context(dep.acquire())
            assert isinstance(engine, ChatEngine)
            gens = [engine.generate(inp) for inp in inputs]
            for g in gens:
                stack.push_async_callback(g.aclose)
            firsts = [await anext(g) for g in gens]  # prompt processed: errors so far are 4xx/5xx
        except BaseException:
            await stack.aclose()
            raise
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        outputs = [features.output.parser(f.prompt_text) for f in firsts]
        return self._sse(card, gens, outputs, firsts[0].prompt_tokens or 0, include_usage, stack)

    async def _sse(
        self,
        card: ModelCard,
        gens: list[AsyncGenerator[ChatDelta, None]],
        outputs: list[ChoiceOutput],
        prompt_tokens: int,
        include_usage: bool,
        stack: AsyncExitStack,
    ) -> AsyncIterator[str]:
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

        completion = [0] * len(gens)

        def choice(i: int, delta: dict[str, Any], finish_reason: str | None = None) -> str:
            return chunk([{"index": i, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])

        async with stack:
            try:
                for i in range(len(gens)):
                    yield chunk(
                        [
                            {
                                "index": i,
                                "delta": {"role": "assistant", "content": ""},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ]
                    )
                async for i, delta in _merge(gens):
                    completion[i] = delta.completion_tokens
                    if delta.prompt_tokens is not None:  # engines may also report it late
                        prompt_tokens = delta.prompt_tokens
                    events = outputs[i].feed(delta.text, delta.completion_tokens)
                    if delta.finish_reason:
                        events += outputs[i].finish(delta.completion_tokens)
                    for event in events:
                        for d in shaping.deltas(event):
                            yield choice(i, d)
                    if delta.finish_reason:
                        yield choice(i, {}, outputs[i].finish_reason(delta.finish_reason))
                self.state.meter.record(
                    card, "chat.completions", input_tokens=prompt_tokens, output_tokens=sum(completion)
                )
                if include_usage:
                    reasoning = sum(o.reasoning_tokens for o in outputs)
                    yield chunk([], shaping.usage(prompt_tokens, sum(completion), reasoning))
            except MMServeError as e:
                if e.status_code >= 500:
                    log.error("stream for '%s' failed: %s", card.id, e.message, exc_info=e.__cause__ or e)
                yield json.dumps(error_body(e))
            except Exception as e:  # never a traceback to the client; the log has it
                log.exception("stream for '%s' failed", card.id, exc_info=e)
                yield json.dumps(error_body(e))
            yield "[DONE]"

    # ------------------------------------------------------------------ preparation

    async def _prepare(self, req: ChatCompletionRequest) -> tuple[ModelCard, list[ChatInput], ChatFeatures]:
        image_refs = _image_refs(req.messages)
        needs = Needs("chat", images=len(image_refs), output_tokens=req.output_limit or 0, tools=bool(req.tools))
        card = self.state.router.route(req.model, needs).cards[0]
        limits = self.state.settings.limits
        self._check_params(req, card)
        features = resolve_features(req, card, max_tools=limits.max_tools)
        if image_refs and not card.capabilities.vision:
            raise ModelCapabilityError(
                f"The model '{card.id}' does not accept images (its card has capabilities.vision / "
                "multimodal_enabled set to false). Remove the image parts or use a vision model.",
                param=image_refs[0][1],
            )
        max_images = min(card.capabilities.max_images, limits.max_images_per_request)
        if len(image_refs) > max_images:
            raise InvalidRequestError(
                f"The request has {len(image_refs)} images; the model '{card.id}' accepts at most {max_images}.",
                param="messages",
                code="too_many_images",
            )
        images = await self.state.media.load_images(
            [ImageRef(p.image_url.url, p.image_url.detail, param) for p, param in image_refs],
            card,
            input_size=self._image_input_size(card) if image_refs else None,
        )
        messages = _to_engine_messages(req.messages, iter(images))
        base = SamplingParams(
            max_tokens=req.output_limit,
            temperature=req.temperature,
            top_p=req.top_p,
            stop=req.stop_list,
            seed=req.seed,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
        )
        inputs = []
        for i in range(req.n):
            params = SamplingParams(**{**base.__dict__, "seed": None if req.seed is None else req.seed + i})
            inputs.append(
                ChatInput(
                    messages=messages,
                    params=params,
                    tools=features.tools,
                    tool_choice=features.tool_choice,
                    response_format=req.response_format,
                    reasoning=features.reasoning,
                    extra={"chat_template_kwargs": features.template_kwargs},
                    constraint=features.constraint,
                )
            )
        return card, inputs, features

    def _image_input_size(self, card: ModelCard) -> ImageInputSize | None:
        """How the model's processor sizes images, so they are downscaled once, before it.

        Images are ingested before an engine slot is taken (a slow URL must not hold one), so
        this asks the engine only if it is already loaded; a cold model uses its card's
        ``limits.image_input_side`` (or, unset, just the limits: its processor then resizes).
        """
        engine = self.state.runtime.deployment(card).engine
        if isinstance(engine, ChatEngine):
            return engine.image_input_size()
        return card_image_input_size(card)

    def _check_params(self, req: ChatCompletionRequest, card: ModelCard) -> None:
        limits = self.state.settings.limits
        out = req.output_limit
        if out is not None and out > card.limits.max_output_tokens:
            raise InvalidRequestError(
                f"max_tokens is {out}; the model '{card.id}' allows at most {card.limits.max_output_tokens}.",
                param="max_completion_tokens" if req.max_completion_tokens else "max_tokens",
            )
        max_n = min(card.limits.max_n, limits.max_n)
        if req.n > max_n:
            raise InvalidRequestError(f"n is {req.n}; the model '{card.id}' allows at most {max_n}.", param="n")
        stops = req.stop_list
        if len(stops) > limits.max_stop_sequences:
            raise InvalidRequestError(f"At most {limits.max_stop_sequences} stop sequences are allowed.", param="stop")
        if any(not s for s in stops):
            raise InvalidRequestError("Stop sequences must not be empty strings.", param="stop")
        if len(req.messages) > limits.max_messages:
            raise InvalidRequestError(f"At most {limits.max_messages} messages are allowed.", param="messages")

    @staticmethod
    async def _collect(engine: ChatEngine, inp: ChatInput, index: int, fmt: OutputFormat) -> tuple[_Choice, int]:
        choice: _Choice | None = None
        prompt_tokens = 0
        async for delta in engine.generate(inp):
            if choice is None:  # the first delta carries the prompt
                choice = _Choice(index, fmt.parser(delta.prompt_text))
            if delta.prompt_tokens is not None:
                prompt_tokens = delta.prompt_tokens
            choice.output.feed(delta.text, delta.completion_tokens)
            choice.completion_tokens = delta.completion_tokens
            if delta.finish_reason:
                choice.finish_reason = delta.finish_reason
        choice = choice or _Choice(index, fmt.parser())
        choice.output.finish(choice.completion_tokens)
        return choice, prompt_tokens


def _image_refs(messages: list[Message]) -> list[tuple[ImagePart, str]]:
    refs = []
    for mi, m in enumerate(messages):
        if isinstance(m.content, list):
            for pi, part in enumerate(m.content):
                if isinstance(part, ImagePart):
                    refs.append((part, f"messages[{mi}].content[{pi}].image_url"))
    return refs


def _to_engine_messages(messages: list[Message], images: Any) -> list[ChatMessage]:
    out = []
    for m in messages:
        content: str | list[ChatPart]
        if m.content is None:
            content = ""
        elif isinstance(m.content, str):
            content = m.content
        else:
            content = [
                ChatPart("image", image=next(images)) if isinstance(p, ImagePart) else ChatPart("text", text=p.text)
                for p in m.content
            ]
        out.append(
            ChatMessage(
                role="system" if m.role == "developer" else m.role,
                content=content,
                name=m.name,
                tool_calls=[tc.model_dump() for tc in m.tool_calls] if m.tool_calls else None,
                tool_call_id=m.tool_call_id,
                reasoning_content=m.reasoning_content,
            )
        )
    return out


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


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"
