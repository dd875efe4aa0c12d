"""Sampling with a per-request random generator, for transformers' ``generate``.

``generate`` samples with torch's global RNG, so two concurrent requests with a ``seed``
would disturb each other. :class:`SeededSampler` draws the token itself from its own
``torch.Generator`` and hands ``generate`` a one-hot score, which greedy decoding keeps.
"""

from __future__ import annotations

from typing import Any


class SeededSampler:
    """A LogitsProcessor that samples the next token itself with a per-request torch.Generator.

    It returns scores that are -inf everywhere except the chosen token, so greedy decoding
    in ``generate`` picks it. temperature 0 means greedy. Presence/frequency penalties
    follow OpenAI's definition over the tokens generated so far.
    """

    def __init__(self, params: Any, prompt_len: int, device: Any) -> None:
        import torch

        self.t = params.temperature
        self.top_p = params.top_p
        self.presence = params.presence_penalty
        self.frequency = params.frequency_penalty
        self.prompt_len = prompt_len
        self.gen = torch.Generator(device=device)
        if params.seed is not None:
            self.gen.manual_seed(params.seed % 2**64)  # torch takes 64 bits; the API allows any int64 (+n)
        else:
            self.gen.seed()

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.float()
        if self.presence or self.frequency:
            generated = input_ids[:, self.prompt_len :]
            counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            scores = scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)
        if self.t < 1e-5:  # greedy, as in vLLM: dividing by a tinier temperature overflows to inf/NaN
            return scores
        scores = scores / self.t
        if self.top_p < 1.0:
            sorted_scores, idx = torch.sort(scores, descending=True)
            cum = sorted_scores.softmax(-1).cumsum(-1)
            drop = cum - sorted_scores.softmax(-1) > self.top_p  # keep at least the top token
            sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
            scores = torch.full_like(scores, float("-inf")).scatter(1, idx, sorted_scores)
        token = torch.multinomial(scores.softmax(-1), 1, generator=self.gen)
        return torch.full_like(scores, float("-inf")).scatter(1, token, 0.0)
