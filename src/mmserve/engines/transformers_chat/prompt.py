"""From engine chat messages to what a chat template reads, and the output budget a prompt leaves."""

from __future__ import annotations

from typing import Any

from mmserve.chatformat.templates import template_tool_calls
from mmserve.engines.types import ChatMessage, RawPrompt
from mmserve.errors import ContextLengthError


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
