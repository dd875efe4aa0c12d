"""Shared by the diffusers engines: the classes a card names (found or refused clearly), prompt token counts."""

from __future__ import annotations

from typing import Any

from mmserve.errors import EngineUnavailableError


def diffusers_class(name: str, *, kind: str = "pipeline", option: str = "pipeline") -> Any:
    """The class ``diffusers.<name>``: a pipeline (has ``from_pretrained``) or a scheduler (``from_config``)."""
    import diffusers

    found = getattr(diffusers, name, None) if name.isidentifier() else None
    if found is None or not hasattr(found, "from_pretrained" if kind == "pipeline" else "from_config"):
        raise EngineUnavailableError(f"diffusers has no {kind} class '{name}' (check options.{option}).")
    return found


def prompt_tokens(pipe: Any, prompt: str) -> int:
    """Tokens of ``prompt`` as the pipeline's (first) tokenizer reads it, cut at its limit; 0 without one."""
    tok = getattr(pipe, "tokenizer", None)
    if tok is None:
        return 0
    limit = getattr(tok, "model_max_length", None)
    limit = limit if isinstance(limit, int) and limit < 1_000_000 else None
    ids = tok(prompt, truncation=limit is not None, max_length=limit)["input_ids"]
    return len(ids)
