"""A logits-processor factory (the engine's ``options.logits_processors`` hook) that records prompts.

The engine calls ``factory(tokenizer, prompt_ids)`` once per request with the token ids the
model reads: tests look at them to see how text was tokenised. It changes no score.
"""

from __future__ import annotations

from typing import Any

prompts: list[list[int]] = []


class RecordPrompt:
    def __init__(self, tokenizer: Any, prompt_ids: list[int]) -> None:
        prompts.append(list(prompt_ids))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return scores
