"""Logits-processor factories (the engine's ``options.logits_processors`` hook) that slow a model down.

``SlowSteps`` makes every decoding step take ``STEP_S`` and records when it ran.
``FailingSecondChoice`` does the same for the first instance made for a prompt, and fails the
second (the request's second choice) while its prompt is prepared: so a request with
``n: 2`` fails for real in one choice while the other is still generating.
"""

from __future__ import annotations

import threading
import time
from typing import Any

STEP_S = 0.02
steps: list[float] = []  # time.monotonic() of every step the slow choices ran
_made: dict[tuple[int, ...], int] = {}
_lock = threading.Lock()


class SlowSteps:
    def __init__(self, tokenizer: Any, prompt_ids: list[int]) -> None:
        pass

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        time.sleep(STEP_S)
        steps.append(time.monotonic())
        return scores


class FailingSecondChoice(SlowSteps):
    def __init__(self, tokenizer: Any, prompt_ids: list[int]) -> None:
        with _lock:
            n = _made.get(tuple(prompt_ids), 0)
            _made[tuple(prompt_ids)] = n + 1
        if n % 2 == 1:
            raise RuntimeError("this choice fails on purpose")


class FailsMidway:
    """Raises at the fourth token of a request whose prompt says FAIL; leaves every other request alone."""

    def __init__(self, tokenizer: Any, prompt_ids: list[int]) -> None:
        self.fail = "FAIL" in tokenizer.decode(prompt_ids)
        self.prompt_len = len(prompt_ids)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.fail and input_ids.shape[1] - self.prompt_len >= 3:
            raise RuntimeError("this row fails on purpose")
        return scores
