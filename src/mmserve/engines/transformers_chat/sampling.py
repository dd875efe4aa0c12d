"""Sampling for a batch of rows, each with its own parameters and random generator.

A row with a ``seed`` must not share a random stream with other rows, or it would give
different text depending on what else runs: it draws from its own ``torch.Generator`` (one
uniform number per token, turned into a token through the row's cumulative distribution).
Rows without a seed have nothing to reproduce: their numbers come from one generator shared
by all of them, drawn for the whole batch in one call (a call per row cost ~10 us of Python
per row and step). The arithmetic is batched, but a row goes through the same operations
whatever its neighbours (rows are grouped by what their parameters ask: greedy, sampled,
sampled with top_p), so a seeded row gives the same tokens batched or alone.

The log-probabilities returned (``logprobs``) are the log-softmax of the processed logits
the token was drawn from: after the processors and penalties, temperature and top_p
(greedy: before any temperature).
"""

from __future__ import annotations

import threading
from typing import Any

# JSON has no -Infinity: a token that cannot be sampled gets this log-probability (as in vLLM).
MIN_LOGPROB = -9999.0
GREEDY_BELOW = 1e-5  # temperatures below this are greedy, as in vLLM (dividing by less overflows)


class SeededSampler:
    """One row's sampling parameters and random generator."""

    def __init__(self, params: Any, device: Any) -> None:
        import torch

        self.t = params.temperature
        self.top_p = params.top_p
        self.presence = params.presence_penalty
        self.frequency = params.frequency_penalty
        self.want_logprobs = bool(params.logprobs)
        self.greedy = bool(self.t < GREEDY_BELOW)
        self.gen: Any = None  # None: the shared generator of the unseeded rows
        if params.seed is not None:
            self.gen = torch.Generator(device=device)
            self.gen.manual_seed(params.seed % 2**64)  # torch takes 64 bits; the API allows any int64 (+n)


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _shared_generator(device: Any) -> Any:
    """The generator of the rows without a seed on ``device`` (randomly seeded once per process)."""
    key = str(device)
    gen = _shared.get(key)
    if gen is None:
        import torch

        with _shared_lock:
            gen = _shared.get(key)
            if gen is None:
                gen = torch.Generator(device=device)
                gen.seed()
                _shared[key] = gen
    return gen


def _draws(group: list[int], samplers: list[SeededSampler], device: Any, dtype: Any) -> Any:
    """One uniform number per row of ``group``: unseeded rows' in one call, each seeded row's from its generator."""
    import torch

    seeded = [j for j, i in enumerate(group) if samplers[i].gen is not None]
    if not seeded:
        return torch.rand(len(group), generator=_shared_generator(device), device=device, dtype=dtype)
    draws = torch.empty(len(group), device=device, dtype=dtype)
    for j in seeded:
        draws[j : j + 1] = torch.rand(1, generator=samplers[group[j]].gen, device=device)
    if len(seeded) < len(group):
        rest = [j for j in range(len(group)) if samplers[group[j]].gen is None]
        idx = torch.tensor(rest, device=device)
        draws[idx] = torch.rand(len(rest), generator=_shared_generator(device), device=device, dtype=dtype)
    return draws


def hold_back_end(scores: Any, generated: list[int], min_new: int, eos: list[int]) -> Any:
    """``scores`` (rows x vocab), the end of sequence made impossible for rows with fewer than ``min_new`` tokens."""
    early = [i for i, n in enumerate(generated) if n < min_new]
    if not early:
        return scores
    import torch

    scores = scores.clone()
    device = scores.device
    scores[torch.tensor(early, device=device)[:, None], torch.tensor(eos, device=device)] = float("-inf")
    return scores


def sample_rows(scores: Any, samplers: list[SeededSampler], generated: list[Any]) -> tuple[list[int], list[Any]]:
    """The next token of every row of ``scores`` (rows x vocab, processed), and the log-probabilities
    (a vocab-long tensor, or None when the row did not ask) of the distribution it was drawn from.

    ``generated`` holds each row's output ids so far (1 x n), for the presence/frequency penalties.
    """
    import torch

    scores = scores.float()
    penalized = [
        i
        for i, s in enumerate(samplers)
        if (s.presence or s.frequency) and generated[i] is not None and generated[i].numel()
    ]
    if penalized:
        scores = scores.clone()
        for i in penalized:
            scores[i : i + 1] = _penalize(scores[i : i + 1], generated[i], samplers[i])
    tokens: list[int] = [0] * len(samplers)
    logprobs: list[Any] = [None] * len(samplers)
    greedy = [i for i, s in enumerate(samplers) if s.greedy]
    plain = [i for i, s in enumerate(samplers) if not s.greedy and s.top_p >= 1.0]
    nucleus = [i for i, s in enumerate(samplers) if not s.greedy and s.top_p < 1.0]
    if greedy:
        rows = _rows(scores, greedy)
        for i, token in zip(greedy, rows.argmax(-1).tolist(), strict=True):
            tokens[i] = int(token)
        _keep_logprobs(rows, greedy, samplers, logprobs)
    for group in (plain, nucleus):
        if not group:
            continue
        temps = torch.tensor([samplers[i].t for i in group], device=scores.device, dtype=scores.dtype)
        rows = _rows(scores, group) / temps[:, None]
        if group is nucleus:
            rows = _top_p(rows, torch.tensor([samplers[i].top_p for i in group], device=scores.device))
        cdf = rows.softmax(-1).cumsum(-1)
        draws = _draws(group, samplers, scores.device, cdf.dtype)
        # the first token whose cumulative probability passes the draw: never one of probability 0
        chosen = torch.searchsorted(cdf, (draws * cdf[:, -1])[:, None], right=True)
        for i, token in zip(group, chosen.clamp_(max=cdf.shape[-1] - 1)[:, 0].tolist(), strict=True):
            tokens[i] = int(token)
        _keep_logprobs(rows, group, samplers, logprobs)
    return tokens, logprobs


def _rows(scores: Any, group: list[int]) -> Any:
    if len(group) == scores.shape[0]:
        return scores
    import torch

    return scores.index_select(0, torch.tensor(group, device=scores.device))


def _keep_logprobs(rows: Any, group: list[int], samplers: list[SeededSampler], out: list[Any]) -> None:
    wanted = [j for j, i in enumerate(group) if samplers[i].want_logprobs]
    if wanted:
        lps = rows.log_softmax(-1)
        for j in wanted:
            out[group[j]] = lps[j]


def _penalize(scores: Any, generated: Any, s: SeededSampler) -> Any:
    """OpenAI's presence and frequency penalties over the tokens generated so far."""
    import torch

    counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
    return scores - s.frequency * counts - s.presence * (counts > 0).to(scores.dtype)


def _top_p(rows: Any, top_p: Any) -> Any:
    """Keep each row's most likely tokens up to ``top_p`` of the mass (at least the top one)."""
    import torch

    sorted_scores, idx = torch.sort(rows, descending=True)
    probs = sorted_scores.softmax(-1)
    drop = probs.cumsum(-1) - probs > top_p[:, None]
    sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
    return torch.full_like(rows, float("-inf")).scatter(1, idx, sorted_scores)
