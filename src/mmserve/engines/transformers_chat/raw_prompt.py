"""Raw prompts (legacy completions): the text or token ids as given, without a chat template.

Text is tokenized with the tokenizer's own special tokens (a BOS where the model has one),
as vLLM's completions endpoint does. Token ids are checked against the vocabulary. Neither
may hold a vision model's media placeholder (``<image>``): the model would look for an image
that was never sent.
"""

from __future__ import annotations

from typing import Any

from mmserve.engines.types import RawPrompt
from mmserve.errors import InvalidRequestError

_MEDIA_TOKENS = ("image_token", "video_token", "audio_token")


def media_token_ids(processor: Any) -> dict[int, str]:
    """The processor's media placeholder tokens by id."""
    out: dict[int, str] = {}
    for name in _MEDIA_TOKENS:
        token, token_id = getattr(processor, name, None), getattr(processor, f"{name}_id", None)
        if isinstance(token, str) and isinstance(token_id, int):
            out[token_id] = token
    return out


def raw_prompt_inputs(tokenizer: Any, prompt: RawPrompt, *, vocab: int, reserved: dict[int, str]) -> tuple[str, Any]:
    """The prompt's text and its model inputs (``input_ids``, ``attention_mask``)."""
    import torch
    from transformers import BatchEncoding

    param = prompt.param
    if isinstance(prompt.value, str):
        text = prompt.value
        ids = list(tokenizer(text)["input_ids"])
    else:
        ids = list(prompt.value)
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise InvalidRequestError(
                f"'{param}' has the token id {bad}; this model's token ids are 0 to {vocab - 1}.", param=param
            )
        text = tokenizer.decode(ids)
    if not ids:
        raise InvalidRequestError(f"'{param}' is empty: give at least one token of text.", param=param)
    placeholder = next((reserved[t] for t in ids if t in reserved), None)
    if placeholder is not None:
        raise InvalidRequestError(
            f"'{param}' contains '{placeholder}', which this model reserves for the images it is sent; "
            "a raw prompt cannot carry images (send them to /v1/chat/completions).",
            param=param,
            code="reserved_token",
        )
    encoding = BatchEncoding(
        {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    )
    return text, encoding
