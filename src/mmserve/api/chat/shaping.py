"""OpenAI shapes of a parsed choice: the message (non-streaming) and the chunk deltas (streaming).

A tool call streams as OpenAI streams it, in two deltas the SDKs accumulate by ``index``:
first ``{index, id, type, function: {name, arguments: ""}}``, then
``{index, function: {arguments: "<the JSON arguments>"}}``.
"""

from __future__ import annotations

from typing import Any

from mmserve.chatformat.output import ChoiceOutput, OutputEvent, ToolCall
from mmserve.control.metering import cost_value
from mmserve.engines.types import TokenLogprob


def message(out: ChoiceOutput) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": out.message_content}
    reasoning = out.message_reasoning
    if reasoning is not None:
        msg["reasoning_content"] = reasoning
    if out.tool_calls:
        msg["tool_calls"] = [_call(c) for c in out.tool_calls]
    return msg


def deltas(event: OutputEvent) -> list[dict[str, Any]]:
    if event.kind == "content":
        return [{"content": event.text}]
    if event.kind == "reasoning":
        return [{"reasoning_content": event.text}]
    assert event.call is not None
    head = {**_call(event.call), "index": event.call.index}
    head["function"] = {"name": event.call.name, "arguments": ""}
    body = {"index": event.call.index, "function": {"arguments": event.call.arguments}}
    return [{"tool_calls": [head]}, {"tool_calls": [body]}]


def logprobs(entries: list[TokenLogprob] | None) -> dict[str, Any] | None:
    """``choices[i].logprobs``: every generated token (content, reasoning and tool calls alike, as vLLM gives them)."""
    if entries is None:
        return None
    return {
        "content": [
            {
                "token": e.token,
                "logprob": e.logprob,
                "bytes": e.bytes,
                "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes} for t in e.top_logprobs],
            }
            for e in entries
        ],
        "refusal": None,
    }


def usage(
    prompt: int,
    completion: int,
    reasoning: int = 0,
    details: dict[str, int] | None = None,
    cost: float | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    if details:
        out["prompt_tokens_details"] = details
    if cost is not None:  # mmserve's extension: USD from the card's prices, as metered
        out["cost"] = cost_value(cost)
    return out


def prompt_details(
    image_tokens: int, video_tokens: int, video_frames: int, audio_tokens: int = 0
) -> dict[str, int] | None:
    """What the media of a prompt cost, within ``prompt_tokens`` (None for a text-only prompt).

    ``image_tokens`` counts images only; a video's sampled frames are counted in
    ``video_tokens`` (and ``video_frames``), even for models that see them as images.
    """
    if not (image_tokens or video_tokens or video_frames or audio_tokens):
        return None
    return {
        "cached_tokens": 0,
        "audio_tokens": audio_tokens,
        "image_tokens": image_tokens - video_tokens,
        "video_tokens": video_tokens,
        "video_frames": video_frames,
    }


def _call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
