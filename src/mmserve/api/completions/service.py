"""Legacy completions on chat cards: raw prompts continued without a chat template.

Runs on the chat engine path (:mod:`mmserve.api.chat.generation`): routing, fallback, slots,
streaming and metering are chat's; only the prompt (``ChatInput.prompt``) and the shapes
differ. Choices are ordered prompt by prompt: choice ``k`` continues prompt ``k // n``, and
with a ``seed`` it is sampled with ``seed + k % n``, so each prompt gets what it would alone.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from mmserve.api.chat import generation
from mmserve.api.chat.features import ChatFeatures
from mmserve.api.chat.generation import Choice, Generation, Piece, Totals
from mmserve.api.chat.prepare import CHARS_PER_TOKEN, Prepared, check_generation_limits
from mmserve.api.completions.protocol import CompletionRequest
from mmserve.api.state import AppState
from mmserve.api.streaming import Stream, error_event
from mmserve.cards import ModelCard
from mmserve.control.routing import Needs
from mmserve.engines.types import ChatInput, RawPrompt, SamplingParams, TokenLogprob
from mmserve.errors import InvalidRequestError

log = logging.getLogger("mmserve.completions")
ENDPOINT = "completions"


class CompletionService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def complete(self, req: CompletionRequest) -> dict[str, Any]:
        refuse_unsupported(req)
        return await self.state.router.serve(req.model, needs_of(req), lambda card: self._complete(req, card))

    async def stream(self, req: CompletionRequest) -> Stream:
        refuse_unsupported(req)
        started = await self.state.router.serve(req.model, needs_of(req), lambda card: self._start(req, card))
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return Stream(self._sse(req, started, include_usage), lambda: generation.release(self.state, started))

    async def _complete(self, req: CompletionRequest, card: ModelCard) -> dict[str, Any]:
        done = await generation.generate(self.state, prepare(self.state, req, card), ENDPOINT)
        return {
            **_head(card),
            "object": "text_completion",
            "choices": [
                {
                    "text": (_prompt_text(c) if req.echo else "") + "".join(c.output.content),
                    "index": c.index,
                    "logprobs": legacy_logprobs(c.logprobs, 0),
                    "finish_reason": c.finish_reason,
                }
                for c in done.choices
            ],
            "usage": _usage(done.totals),
        }

    async def _start(self, req: CompletionRequest, card: ModelCard) -> Generation:
        return await generation.start(self.state, prepare(self.state, req, card), ENDPOINT)

    async def _sse(self, req: CompletionRequest, started: Generation, include_usage: bool) -> AsyncGenerator[str, None]:
        head = _head(started.card)

        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> str:
            body = {**head, "object": "text_completion", "choices": choices}
            if include_usage:
                body["usage"] = usage
            return json.dumps(body, ensure_ascii=False)

        offsets = [0] * len(started.choices)  # where each choice's next token starts in its text

        def choice(i: int, text: str, finish_reason: str | None = None) -> str:
            entries = started.choices[i].unsent_logprobs()
            logprobs = legacy_logprobs(entries, offsets[i]) if req.logprobs is not None else None
            offsets[i] += sum(len(e.token) for e in entries or [])
            return chunk([{"text": text, "index": i, "logprobs": logprobs, "finish_reason": finish_reason}])

        try:
            if req.echo:
                for c in started.choices:
                    yield choice(c.index, _prompt_text(c))
            async for item in generation.events(self.state, started):
                if isinstance(item, Piece):
                    yield choice(item.index, item.event.text)
                else:
                    yield choice(item.index, "", item.reason)
            if include_usage:
                yield chunk([], _usage(started.totals))
        except Exception as e:
            yield error_event(e, log, f"completion stream for '{started.card.id}'")
        yield "[DONE]"


def refuse_unsupported(req: CompletionRequest) -> None:
    """Fields whose meaning mmserve cannot honour: a 400 rather than silently ignoring them."""
    if req.logprobs is not None and req.echo:
        raise InvalidRequestError(
            "logprobs with echo would need the prompt's log-probabilities, which are not computed: "
            "ask for one or the other.",
            param="logprobs",
            code="unsupported_parameter",
        )
    if req.suffix:
        raise InvalidRequestError(
            "suffix (text to insert before) is not supported: the engines continue a prompt, they do not fill in.",
            param="suffix",
            code="unsupported_parameter",
        )
    if req.logit_bias:
        raise InvalidRequestError(
            "logit_bias is not supported: leave it out.", param="logit_bias", code="unsupported_parameter"
        )
    if req.best_of is not None and req.best_of != req.n:
        raise InvalidRequestError(
            f"best_of is {req.best_of} and n is {req.n}: mmserve returns every candidate it makes, so best_of "
            "must equal n (or be left out).",
            param="best_of",
            code="unsupported_parameter",
        )


def needs_of(req: CompletionRequest) -> Needs:
    longest = max(len(p) if isinstance(p, list) else len(p) // CHARS_PER_TOKEN for p, _ in req.prompts)
    return Needs("chat", prompt_tokens=longest, output_tokens=req.max_tokens or 0)


def prepare(state: AppState, req: CompletionRequest, card: ModelCard) -> Prepared:
    limits = state.settings.limits
    max_tokens = req.max_tokens or 16
    check_generation_limits(state, card, max_tokens=(max_tokens, "max_tokens"), n=req.n, stops=req.stop_list)
    prompts = req.prompts
    if len(prompts) > limits.max_prompts:
        raise InvalidRequestError(
            f"At most {limits.max_prompts} prompts are allowed per request.", param="prompt", code="server_limit"
        )
    stops = req.stop_list
    inputs, groups = [], []
    for p, (prompt, param) in enumerate(prompts):
        for j in range(req.n):
            params = SamplingParams(
                max_tokens=max_tokens,
                temperature=req.temperature,
                top_p=req.top_p,
                stop=stops,
                seed=None if req.seed is None else req.seed + j,
                presence_penalty=req.presence_penalty,
                frequency_penalty=req.frequency_penalty,
                logprobs=req.logprobs is not None,
                top_logprobs=req.logprobs or 0,
                ignore_eos=req.ignore_eos,
            )
            inputs.append(ChatInput(messages=[], params=params, prompt=RawPrompt(prompt, param)))
            groups.append(p)
    state.runtime.check_request(card, inputs[0])
    return Prepared(card, inputs, ChatFeatures(), groups=groups)


def legacy_logprobs(entries: list[TokenLogprob] | None, offset: int) -> dict[str, Any] | None:
    """The legacy completions shape: parallel lists, top alternatives as {token: logprob} (the sampled token included,
    as vLLM gives them), and each token's character offset in the text."""
    if entries is None:
        return None
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{e.token: e.logprob, **{t.token: t.logprob for t in e.top_logprobs}} for e in entries],
        "text_offset": offsets,
    }


def _prompt_text(c: Choice) -> str:
    return c.prompt_text or ""


def _head(card: ModelCard) -> dict[str, Any]:
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": card.id,
        "system_fingerprint": None,
    }


def _usage(t: Totals) -> dict[str, Any]:
    return {
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "total_tokens": t.prompt_tokens + t.completion_tokens,
    }
