"""Engine chat messages to what a chat template reads; the prompt it renders, with the processor's
inputs; the output budget a prompt leaves."""

from __future__ import annotations

from typing import Any

from mmserve.chatformat.templates import template_tool_calls
from mmserve.engines.transformers_chat.audio_input import resample
from mmserve.engines.transformers_chat.image_input import refuse_placeholder_tokens
from mmserve.engines.transformers_chat.typed_specials import ESCAPED_ROLES, TypedSpecials
from mmserve.engines.types import ChatInput, ChatMessage, RawPrompt
from mmserve.errors import ContextLengthError, InvalidRequestError


def template_messages(
    messages: list[ChatMessage], *, vision: bool, audio: bool = False
) -> tuple[list[dict[str, Any]], list[Any], list[tuple[Any, int]]]:
    """The messages as chat templates expect them, and the images and (samples, rate) audio clips in prompt order.

    A model that neither sees nor hears gets each message's text parts joined; its images and
    clips are listed as ``None`` so that the caller can refuse them.
    """
    out: list[dict[str, Any]] = []
    images: list[Any] = []
    audios: list[tuple[Any, int]] = []
    for m in messages:
        entry: dict[str, Any] = {"role": m.role}
        if isinstance(m.content, str):
            entry["content"] = m.content
        elif vision or audio:
            parts: list[dict[str, Any]] = []
            for p in m.content:
                if p.type == "image":
                    parts.append({"type": "image"})
                    images.append(p.image)
                elif p.type == "audio":
                    parts.append({"type": "audio"})
                    audios.append((p.audio, p.sample_rate))
                else:
                    parts.append({"type": "text", "text": p.text})
            entry["content"] = parts
        else:  # text-only templates expect strings
            images.extend(None for p in m.content if p.type == "image")
            audios.extend((None, 0) for p in m.content if p.type == "audio")
            entry["content"] = "".join(p.text for p in m.content if p.type == "text")
        if m.name:
            entry["name"] = m.name
        if m.tool_calls:
            entry["tool_calls"] = template_tool_calls(m.tool_calls)
        if m.reasoning_content:
            entry["reasoning_content"] = m.reasoning_content
        if m.tool_call_id:
            entry["tool_call_id"] = m.tool_call_id
        out.append(entry)
    return out, images, audios


def max_new_tokens(
    context: int | None, prompt_tokens: int, requested: int | None, default: int, *, raw: RawPrompt | None = None
) -> int:
    """The output budget: ``requested`` (or the card's ``default``, clipped) within the context after the prompt.

    ``raw``: the prompt of a legacy completion, named in the error instead of the messages.
    """
    room = (context - prompt_tokens) if context else None
    if room is not None and room <= 0:
        raise ContextLengthError(
            f"The prompt is {prompt_tokens} tokens, more than the model's context of {context} tokens. "
            + ("Shorten the prompt." if raw else "Shorten the messages or send fewer images."),
            param=raw.param if raw else "messages",
        )
    if requested is None:
        return min(default, room) if room is not None else default
    if room is not None and requested > room:
        raise ContextLengthError(
            f"The prompt ({prompt_tokens} tokens) plus max_tokens ({requested}) exceeds the model's "
            f"context of {context} tokens. Lower max_tokens to at most {room}.",
            param="max_tokens",
        )
    return requested


def render(
    processor: Any, request: ChatInput, *, model: str, vision: bool, audio: bool, escaping: TypedSpecials | None
) -> tuple[str, Any, list[Any]]:
    """The prompt the chat template renders, the processor's inputs for it and its media, and the images.

    ``model`` names the card in errors; ``escaping``: the typed special tokens to escape in user text
    (the card's ``user_special_tokens: escape``), or None.
    """
    messages, images, audios = template_messages(request.messages, vision=vision, audio=audio)
    if images and not vision:
        raise InvalidRequestError(f"The model '{model}' does not accept images.", param="messages")
    if audios and not audio:
        raise InvalidRequestError(f"The model '{model}' does not hear audio.", param="messages")
    if vision or audio:
        refuse_placeholder_tokens(request.messages, processor, skip_roles=ESCAPED_ROLES if escaping is not None else ())
    if escaping is not None:
        messages = escaping.escape_entries(messages)
    try:
        prompt = processor.apply_chat_template(
            messages,
            tools=request.tools,
            add_generation_prompt=True,
            tokenize=False,
            **request.extra.get("chat_template_kwargs", {}),
        )
    except Exception as e:  # jinja2 TemplateError: the template's own message is for users
        if type(e).__module__.startswith("jinja2"):
            message = f"The model's chat template refused the conversation: {e}"
            raise InvalidRequestError(message, param="messages") from None
        raise
    if vision or audio:
        kwargs: dict[str, Any] = {"images": images or None} if vision else {}
        if audios:
            rate = int(processor.feature_extractor.sampling_rate)
            kwargs.update(audio=[resample(a, rate) for a in audios], sampling_rate=rate)
        inputs = processor(text=[prompt], return_tensors="pt", **kwargs)
    else:
        inputs = processor([prompt], return_tensors="pt", add_special_tokens=False)
    return prompt, inputs, images
