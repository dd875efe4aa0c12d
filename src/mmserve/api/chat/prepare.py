"""Per-card preparation of a chat request: parameter checks, features, image ingestion, engine inputs.

Separate from the service so that routing can prepare the same request for another card
when the first candidate fails before any output (each card has its own limits, formats
and image input size).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from mmserve.api.chat.features import ChatFeatures, resolve_features
from mmserve.api.chat.limits import check_text_size
from mmserve.api.chat.media import check_media, load_media, media_refs, text_length, to_engine_messages
from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.api.state import AppState
from mmserve.cards import ModelCard
from mmserve.control.routing import Needs
from mmserve.engines.base import ChatEngine, card_image_input_size
from mmserve.engines.types import ChatInput, SamplingParams
from mmserve.errors import InvalidRequestError
from mmserve.media.image.decode import ImageInputSize

# A rough prompt-size estimate for routing by context length, before any tokenizer runs.
CHARS_PER_TOKEN = 4
TOKENS_PER_IMAGE_ESTIMATE = 256


@dataclass
class Prepared:
    card: ModelCard
    inputs: list[ChatInput]
    features: ChatFeatures
    groups: list[int] | None = None  # the prompt of each input (legacy completions); None: one prompt
    video_frames: int = 0  # frames sampled from the request's videos (sent to the model as images)
    audio_seconds: float = 0.0  # length of the request's audio parts

    def group(self, index: int) -> int:
        return self.groups[index] if self.groups else 0


def needs_of(req: ChatCompletionRequest) -> Needs:
    """What the request requires of a model, for routing."""
    refs = media_refs(req.messages)
    chars = sum(text_length(m) for m in req.messages)
    visual = len(refs.images) + len(refs.videos)  # a video: at least what one image costs
    return Needs(
        "chat",
        images=len(refs.images),
        videos=len(refs.videos),
        audios=len(refs.audios),
        prompt_tokens=chars // CHARS_PER_TOKEN + TOKENS_PER_IMAGE_ESTIMATE * visual,
        output_tokens=req.output_limit or 0,
        tools=bool(req.tools) and req.tool_choice != "none",
        reasoning=req.reasoning_effort not in (None, "none"),
    )


async def prepare(state: AppState, req: ChatCompletionRequest, card: ModelCard) -> Prepared:
    refs = media_refs(req.messages)
    limits = state.settings.limits
    check_params(state, req, card)
    if req.tools or req.response_format:  # their JSON Schemas are checked: CPU work as large as the body
        features = await asyncio.to_thread(resolve_features, req, card, max_tools=limits.max_tools)
    else:
        features = resolve_features(req, card, max_tools=limits.max_tools)
    check_media(state, card, refs)
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
    # what the card's engine cannot do (logprobs, ...), before any media is fetched
    state.runtime.check_request(card, ChatInput(messages=[], params=base, constraint=features.constraint))
    visual = refs.images or refs.videos
    media = await load_media(state, card, refs, _image_input_size(state, card) if visual else None)
    messages = to_engine_messages(req.messages, media)
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
    return Prepared(card, inputs, features, video_frames=media.video_frames, audio_seconds=media.audio_seconds)


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


def check_generation_limits(
    state: AppState, card: ModelCard, *, max_tokens: tuple[int | None, str], n: int, stops: list[str]
) -> None:
    """The card's and the server's bounds on output tokens, choices and stop sequences (chat and completions)."""
    limits = state.settings.limits
    out, param = max_tokens
    if out is not None and out > card.limits.max_output_tokens:
        raise InvalidRequestError(
            f"max_tokens is {out}; the model '{card.id}' allows at most {card.limits.max_output_tokens}.",
            param=param,
            code="model_limit",
        )
    max_n = min(card.limits.max_n, limits.max_n)
    if n > max_n:
        raise InvalidRequestError(
            f"n is {n}; the model '{card.id}' allows at most {max_n}.", param="n", code="model_limit"
        )
    if len(stops) > limits.max_stop_sequences:
        raise InvalidRequestError(
            f"At most {limits.max_stop_sequences} stop sequences are allowed.", param="stop", code="server_limit"
        )
    if any(not s for s in stops):
        raise InvalidRequestError("Stop sequences must not be empty strings.", param="stop")


def check_params(state: AppState, req: ChatCompletionRequest, card: ModelCard) -> None:
    limits = state.settings.limits
    check_text_size(req, card, limits)  # before anything tokenises (or even reads) the text
    out = req.output_limit
    param = next(
        (f for f in ("max_completion_tokens", "max_tokens", "maximum_tokens") if getattr(req, f)), "max_tokens"
    )
    check_generation_limits(state, card, max_tokens=(out, param), n=req.n, stops=req.stop_list)
    if req.top_logprobs is not None and not req.logprobs:
        raise InvalidRequestError(
            "top_logprobs needs 'logprobs': true (set both, or remove top_logprobs).", param="top_logprobs"
        )
    if len(req.messages) > limits.max_messages:
        raise InvalidRequestError(
            f"At most {limits.max_messages} messages are allowed.", param="messages", code="server_limit"
        )
