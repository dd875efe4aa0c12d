"""Sampling with a per-request random generator, and the log-probabilities of what was sampled.

``generate`` samples with torch's global RNG, so two concurrent requests with a ``seed``
would disturb each other. :class:`SeededSampler` draws the token itself from its own
``torch.Generator``; it also keeps the log-probabilities of the distribution it drew from
when the request asks for them (``logprobs``).
"""

from __future__ import annotations

from typing import Any

# JSON has no -Infinity: a token that cannot be sampled gets this log-probability (as in vLLM).
MIN_LOGPROB = -9999.0


class SeededSampler:
    """Samples one row's next token with the row's own torch.Generator. temperature 0 means greedy.

    Presence/frequency penalties follow OpenAI's definition over the tokens generated so
    far. The log-probabilities (``want_logprobs``) are the log-softmax of the processed logits
    the token was drawn from: after the processors and penalties, temperature and top_p
    (greedy: before any temperature).
    """

    def __init__(self, params: Any, device: Any, *, prompt_len: int = 0) -> None:
        import torch

        self.t = params.temperature
        self.top_p = params.top_p
        self.presence = params.presence_penalty
        self.frequency = params.frequency_penalty
        self.want_logprobs = bool(params.logprobs)
        self.prompt_len = prompt_len
        self.gen = torch.Generator(device=device)
        if params.seed is not None:
            self.gen.manual_seed(params.seed % 2**64)  # torch takes 64 bits; the API allows any int64 (+n)
        else:
            self.gen.seed()
        self.last_logprobs: Any = None  # the log-softmax row of the last sample (want_logprobs)

    def sample(self, scores: Any, generated: Any) -> int:
        """The next token from ``scores`` (1 x vocab, processed) given the ``generated`` ids so far (1 x n)."""
        import torch

        scores = scores.float()
        if (self.presence or self.frequency) and generated.shape[-1]:
            counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            scores = scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)
        if self.t < 1e-5:  # greedy, as in vLLM: dividing by a tinier temperature overflows to inf/NaN
            token = int(scores.argmax(-1))
            self.last_logprobs = scores.log_softmax(-1)[0] if self.want_logprobs else None
            return token
        scores = scores / self.t
        if self.top_p < 1.0:
            sorted_scores, idx = torch.sort(scores, descending=True)
            cum = sorted_scores.softmax(-1).cumsum(-1)
            drop = cum - sorted_scores.softmax(-1) > self.top_p  # keep at least the top token
            sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
            scores = torch.full_like(scores, float("-inf")).scatter(1, idx, sorted_scores)
        probs = scores.softmax(-1)
        token = int(torch.multinomial(probs, 1, generator=self.gen))
        self.last_logprobs = scores.log_softmax(-1)[0] if self.want_logprobs else None
        return token

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """As a transformers LogitsProcessor: a one-hot score on the sampled token, which greedy search keeps."""
        import torch

        token = self.sample(scores, input_ids[:, self.prompt_len :])
        return torch.full_like(scores, float("-inf"), dtype=torch.float32).index_fill_(1, torch.tensor([token]), 0.0)
