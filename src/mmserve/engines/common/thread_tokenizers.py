"""One copy of a pipeline's tokenizers per worker thread, for engines that run calls in parallel.

A transformers tokenizer keeps its padding and truncation settings on the shared Rust
tokenizer: each call sets them, then encodes. Diffusers pipelines call theirs with
``padding="max_length"`` and, in the same ``encode_prompt``, with ``padding="longest"``; two
calls in two threads interleave and one gets the other's padding (measured here: 35 of
20,000 encodes came back unpadded), which changes a seeded image or makes the pipeline fail
concatenating prompt embeddings of different lengths. Each worker thread therefore encodes
with its own deep copy, made once per thread (a millisecond for the demo tokenizers).
"""

from __future__ import annotations

import copy
import threading
from typing import Any


def _is_tokenizer(component: Any) -> bool:
    try:
        from transformers import PreTrainedTokenizerBase
    except ImportError:  # pragma: no cover - diffusers pipelines with tokenizers need transformers
        return False
    return isinstance(component, PreTrainedTokenizerBase)


class ThreadTokenizers:
    def __init__(self, components: dict[str, Any]) -> None:
        self._shared = {name: c for name, c in components.items() if _is_tokenizer(c)}
        self._local = threading.local()

    def for_this_thread(self) -> dict[str, Any]:
        """``component name -> tokenizer`` owned by the calling thread."""
        copies: dict[str, Any] | None = getattr(self._local, "copies", None)
        if copies is None:
            copies = self._local.copies = {name: copy.deepcopy(tok) for name, tok in self._shared.items()}
        return copies
