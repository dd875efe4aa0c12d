"""Drive a tiny random Whisper to a plausible transcript, so the timestamp paths run for real.

Random weights never emit a sensible token sequence; :class:`ForceTokens` is a logits
processor (the standard transformers extension point) that makes ``generate`` pick a given
sequence: timestamps, text and ``<|endoftext|>``. Everything downstream of the scores
(Whisper's own timestamp rules, cross-attention alignment for word times, the engine's
segment parsing, the API's formats) is the real code.
"""

from __future__ import annotations

from typing import Any

import torch

SCRIPT = [(0.0, " Hello world.", 1.0), (1.2, " How are you?", 2.4)]


class ForceTokens:
    """Score every token -inf except the next one of ``tokens`` (then end of text), per window.

    The decoder prompt ends with the task token (``<|transcribe|>`` or ``<|translate|>``), after
    any ``<|startofprev|>`` prompt; the forced text starts right after it.
    """

    def __init__(self, tokens: list[int], eot: int, task_tokens: set[int]) -> None:
        self.tokens, self.eot, self.task_tokens = tokens, eot, task_tokens

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        row = input_ids[0].tolist()
        begin = max(i for i, t in enumerate(row) if t in self.task_tokens) + 1
        step = len(row) - begin
        token = self.tokens[step] if step < len(self.tokens) else self.eot
        forced = torch.full_like(scores, float("-inf"))
        forced[:, token] = 0.0
        return forced


def script_tokens(tokenizer: Any, script: list[tuple[float, str, float]] = SCRIPT) -> list[int]:
    """``<|start|> text <|end|>`` for each (start, text, end), the way Whisper writes segments."""
    ids: list[int] = []
    for start, text, end in script:
        ids.append(tokenizer.convert_tokens_to_ids(f"<|{start:.2f}|>"))
        ids.extend(tokenizer(text, add_special_tokens=False).input_ids)
        ids.append(tokenizer.convert_tokens_to_ids(f"<|{end:.2f}|>"))
    return ids


def force_script(engine: Any, script: list[tuple[float, str, float]] = SCRIPT) -> ForceTokens:
    tok = engine.processor.tokenizer
    tasks = {tok.convert_tokens_to_ids("<|transcribe|>"), tok.convert_tokens_to_ids("<|translate|>")}
    proc = ForceTokens(script_tokens(tok, script), tok.convert_tokens_to_ids("<|endoftext|>"), tasks)
    engine.extra_logits_processors = [proc]
    return proc
