"""A logits-processor entry (``tests.helpers.load_gate:gated``) whose import waits on :data:`GATE`.

The transformers engine resolves its ``options.logits_processors`` while it loads, so a card
naming ``gated`` keeps a real model loading until a test sets the gate: the server's probes
are then seen while a model loads, for as long as the test needs.
"""

from __future__ import annotations

import threading
from typing import Any

GATE = threading.Event()


def _passthrough(tokenizer: Any, prompt_ids: list[int]) -> Any:
    return lambda input_ids, scores: scores


def __getattr__(name: str) -> Any:
    if name == "gated":
        if not GATE.wait(timeout=120):
            raise TimeoutError("the test never opened the load gate")
        return _passthrough
    raise AttributeError(name)
