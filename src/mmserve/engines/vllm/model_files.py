"""What mmserve reads from a model directory itself (plain JSON: no model library in mmserve's process).

- ``generation_config.json``'s ``suppress_tokens``: vLLM ignores them; mmserve sends them as a
  logit bias (:mod:`.mapping`); its ``min_new_tokens``, which vLLM does not read either, as
  ``min_tokens``.
- ``config.json``'s image token id (``image_token_index`` / ``image_token_id``), to count the
  tokens images expand into, and the context length.
- The tokenizer's added tokens: a format tag that is one (``<think>``, ``<tool_call>`` in Qwen3)
  is written into answer grammars as a token reference, as llguidance requires
  (:meth:`mmserve.chatformat.grammar.OutputConstraint.grammar`; llguidance treats every added
  token as special).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("mmserve.engines.vllm")


@dataclass(frozen=True)
class ModelFiles:
    suppress_tokens: tuple[int, ...] = ()
    min_new_tokens: int = 0
    image_token_id: int | None = None
    max_positions: int | None = None
    added_tokens: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def read(cls, source: Path | None) -> ModelFiles:
        if source is None or not source.is_dir():
            return cls()
        config = _json(source / "config.json")
        text_config = config.get("text_config")
        text: dict[str, Any] = text_config if isinstance(text_config, dict) else config
        generation = _json(source / "generation_config.json")
        suppress = generation.get("suppress_tokens") or []
        min_new = generation.get("min_new_tokens")
        image = config.get("image_token_index", config.get("image_token_id"))
        positions = text.get("max_position_embeddings")
        return cls(
            suppress_tokens=tuple(int(t) for t in suppress if isinstance(t, int)),
            min_new_tokens=min_new if isinstance(min_new, int) and min_new > 0 else 0,
            image_token_id=image if isinstance(image, int) else None,
            max_positions=positions if isinstance(positions, int) else None,
            added_tokens=_added_tokens(source),
        )


def _added_tokens(source: Path) -> frozenset[str]:
    found: set[str] = set()
    for item in _json(source / "tokenizer.json").get("added_tokens") or []:
        if isinstance(item, dict) and isinstance(item.get("content"), str):
            found.add(item["content"])
    decoder = _json(source / "tokenizer_config.json").get("added_tokens_decoder") or {}
    for item in decoder.values() if isinstance(decoder, dict) else ():
        if isinstance(item, dict) and isinstance(item.get("content"), str):
            found.add(item["content"])
    return frozenset(found)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("could not read %s: %s", path, e)
        return {}
    return data if isinstance(data, dict) else {}
