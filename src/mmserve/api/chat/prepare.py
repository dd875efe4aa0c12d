"""Per-card preparation of a chat request: parameter checks, features, image ingestion, engine inputs.

Separate from the service so that routing can prepare the same request for another card
when the first candidate fails before any output (each card has its own limits, formats
and image input size).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from mmserve.api.chat.features import ChatFeatures, resolve_features
from mmserve.api.chat.protocol import ChatCompletionRequest, ImagePart, Message
from mmserve.api.state import AppState
from mmserve.cards import ModelCard
from mmserve.control.routing import Needs
from mmserve.engines.base import ChatEngine, card_image_input_size
from mmserve.engines.types import ChatInput, ChatMessage, ChatPart, SamplingParams
from mmserve.errors import InvalidRequestError, ModelCapabilityError
from mmserve.media.image.decode import ImageInputSize
from mmserve.media.image.ingest import ImageRef

# A rough prompt-size estimate for routing by context length, before any tokenizer runs.
CHARS_PER_TOKEN = 4
TOKENS_PER_IMAGE_ESTIMATE = 256


@dataclass
class Prepared:
    card: ModelCard
    inputs: list[ChatInput]
    features: ChatFeatures


def needs_of(req: ChatCompletionRequest) -> Needs:
    """What the request requires of a model, for routing."""
    refs = image_refs(req.messages)
    chars = sum(_text_len(m) for m in req.messages)
    return Needs(
        "chat",
        images=len(refs),
        prompt_tokens=chars // CHARS_PER_TOKEN + TOKENS_PER_IMAGE_ESTIMATE * len(refs),
        output_tokens=req.output_limit or 0,
        tools=bool(req.tools) and req.tool_choice != "none",
        reasoning=req.reasoning_effort not in (None, "none"),
    )


async def prepare(state: AppState, req: ChatCompletionRequest, card: ModelCard) -> Prepared:
    refs = image_refs(req.messages)
    limits = state.settings.limits
    check_params(state, req, card)
    if req.tools or req.response_format:  # their JSON Schemas are checked: CPU work as large as the body
        features = await asyncio.to_thread(resolve_features, req, card, max_tools=limits.max_tools)
    else:
        features = resolve_features(req, card, max_tools=limits.max_tools)
    if refs and not card.capabilities.vision:
        raise ModelCapabilityError(
            f"The model '{card.id}' does not accept images (its card has capabilities.vision / "
            "multimodal_enabled set to false). Remove the image parts or use a vision model.",
            param=refs[0][1],
        )
    base = SamplingParams(
        max_tokens=req.output_limit,
        temperature=req.temperature,
        top_p=req.top_p,
        stop=req.stop_list,
        seed=req.seed,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        logprobs=bool(req.logprobs),
        top_logprobs=req.top_logprobs or 0,
        ignore_eos=req.ignore_eos,
    )
    # what the card's engine cannot do (logprobs, ...), before any image is fetched
    state.runtime.check_request(card, ChatInput(messages=[], params=base, constraint=features.constraint))
    max_images = min(card.capabilities.max_images, limits.max_images_per_request)
    if len(refs) > max_images:
        raise InvalidRequestError(
            f"The request has {len(refs)} images; the model '{card.id}' accepts at most {max_images}.",
            param="messages",
            code="too_many_images",
        )
    images = await state.media.load_images(
        [ImageRef(p.image_url.url, p.image_url.detail, param) for p, param in refs],
        card.limits,
        model=card.id,
        input_size=_image_input_size(state, card) if refs else None,
    )
    messages = to_engine_messages(req.messages, iter(images))
    inputs = []
    for i in range(req.n):
        params = replace(base, seed=None if req.seed is None else req.seed + i)
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
    return Prepared(card, inputs, features)


def _image_input_size(state: AppState, card: ModelCard) -> ImageInputSize | None:
    """How the model's processor sizes images, so they are downscaled once, before it.

    Images are ingested before an engine slot is taken (a slow URL must not hold one), so
    this asks the engine only if it is already loaded; a cold model uses its card's
    ``limits.image_input_side`` (or, unset, just the limits: its processor then resizes).
    """
    engine = state.runtime.deployment(card).engine
    if isinstance(engine, ChatEngine):
        return engine.image_input_size()
    return card_image_input_size(card)


def check_params(state: AppState, req: ChatCompletionRequest, card: ModelCard) -> None:
    limits = state.settings.limits
    out = req.output_limit
    if out is not None and out > card.limits.max_output_tokens:
        raise InvalidRequestError(
            f"max_tokens is {out}; the model '{card.id}' allows at most {card.limits.max_output_tokens}.",
            param=next(f for f in ("max_completion_tokens", "max_tokens", "maximum_tokens") if getattr(req, f)),
            code="model_limit",
        )
    max_n = min(card.limits.max_n, limits.max_n)
    if req.n > max_n:
        raise InvalidRequestError(
            f"n is {req.n}; the model '{card.id}' allows at most {max_n}.", param="n", code="model_limit"
        )
    stops = req.stop_list
    if len(stops) > limits.max_stop_sequences:
        raise InvalidRequestError(
            f"At most {limits.max_stop_sequences} stop sequences are allowed.", param="stop", code="server_limit"
        )
    if any(not s for s in stops):
        raise InvalidRequestError("Stop sequences must not be empty strings.", param="stop")
    if req.top_logprobs is not None and not req.logprobs:
        raise InvalidRequestError(
            "top_logprobs needs 'logprobs': true (set both, or remove top_logprobs).", param="top_logprobs"
        )
    if len(req.messages) > limits.max_messages:
        raise InvalidRequestError(
            f"At most {limits.max_messages} messages are allowed.", param="messages", code="server_limit"
        )


def image_refs(messages: list[Message]) -> list[tuple[ImagePart, str]]:
    refs = []
    for mi, m in enumerate(messages):
        if isinstance(m.content, list):
            for pi, part in enumerate(m.content):
                if isinstance(part, ImagePart):
                    refs.append((part, f"messages[{mi}].content[{pi}].image_url"))
    return refs


def to_engine_messages(messages: list[Message], images: Any) -> list[ChatMessage]:
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


def _text_len(m: Message) -> int:
    if isinstance(m.content, str):
        return len(m.content)
    if isinstance(m.content, list):
        return sum(len(p.text) for p in m.content if not isinstance(p, ImagePart))
    return 0
