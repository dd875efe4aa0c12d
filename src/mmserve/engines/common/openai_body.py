"""The sampling fields of an OpenAI chat-completions body, for the engines that send one (vLLM, providers)."""

from __future__ import annotations

from typing import Any

from mmserve.engines.types import SamplingParams


def sampling_fields(p: SamplingParams) -> dict[str, Any]:
    """``temperature`` and ``top_p`` always; ``stop``, ``seed`` and the penalties when the request sets them."""
    body: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p}
    if p.stop:
        body["stop"] = p.stop
    if p.seed is not None:
        body["seed"] = p.seed
    if p.presence_penalty:
        body["presence_penalty"] = p.presence_penalty
    if p.frequency_penalty:
        body["frequency_penalty"] = p.frequency_penalty
    return body
