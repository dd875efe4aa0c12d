"""Turn a card's ``source`` into a local directory of weights.

- ``demo:<name>``: a tiny model built locally by a builder in :mod:`mmserve.catalog.builders`
  and cached under ``<data_dir>/models/<name>`` (built once, reused after).
- a path (absolute, or relative to the catalog file): used as-is.
- ``org/name`` (a Hugging Face repo id): resolved through the local Hugging Face cache only;
  mmserve never downloads at request time. Populate the cache with ``huggingface-cli download``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.errors import EngineUnavailableError

log = logging.getLogger("mmserve.sources")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

Progress = Callable[[str], None]


def resolve_source(
    card: ModelCard, *, base_dir: Path, models_dir: Path, progress: Progress | None = None
) -> Path | None:
    src = card.source
    if src is None:
        return None
    if src.startswith("demo:"):
        return build_demo_model(src.removeprefix("demo:"), models_dir, progress=progress)
    path = Path(src).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if path.exists():
        return path
    if _REPO_ID.match(src):
        return _from_hf_cache(src, card.revision)
    # the path is for the operator (the log), not for clients: it would show the server's file layout
    log.error("model '%s': source '%s' does not exist (resolved to %s)", card.id, src, path)
    raise EngineUnavailableError(f"The model '{card.id}' is unavailable: its weights are not on this server.")


def _from_hf_cache(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - comes with transformers/diffusers
        raise EngineUnavailableError(
            f"'{repo_id}' looks like a Hugging Face repo id; install mmserve[transformers] to resolve it."
        ) from None
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:
        raise EngineUnavailableError(
            f"'{repo_id}' is not in the local Hugging Face cache. Download it first "
            f"(huggingface-cli download {repo_id}) or point 'source' at a local directory."
        ) from None
