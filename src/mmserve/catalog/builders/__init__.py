"""Builders of the tiny demo/test models: seeded random weights, locally trained tokenizers.

Each builder writes a complete, loadable model directory (the same files real weights
have) and is deterministic for its seed. Builders import their libraries lazily.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from mmserve.errors import EngineUnavailableError

# name -> "module:function"; the function takes the output directory.
BUILDERS: dict[str, str] = {
    "vlm": "mmserve.catalog.builders.vlm:build_tiny_vlm",
    "text-lm": "mmserve.catalog.builders.vlm:build_tiny_text_lm",
    "tool-lm": "mmserve.catalog.builders.toollm:build_tiny_tool_lm",
    "audio-lm": "mmserve.catalog.builders.audiolm:build_tiny_audio_lm",
    "tool-lm-hd32": "mmserve.catalog.builders.toollm:build_tiny_tool_lm_hd32",
    "whisper": "mmserve.catalog.builders.whisper:build_tiny_whisper",
    "vits": "mmserve.catalog.builders.vits:build_tiny_vits",
    "image": "mmserve.catalog.builders.image:build_tiny_image_pipeline",
    "video": "mmserve.catalog.builders.video:build_tiny_wan",
    "embed-text": "mmserve.catalog.builders.embed:build_tiny_text_encoder",
    "clip": "mmserve.catalog.builders.embed:build_tiny_clip",
}

_MARK = ".mmserve-built"
# One build at a time in a process: builders seed torch's global RNG (torch.manual_seed), so two
# interleaved builds would not be deterministic for their seeds. Builds take about a second.
_BUILD_LOCK = threading.Lock()


def build_demo_model(name: str, models_dir: Path, *, progress: Callable[[str], None] | None = None) -> Path:
    """Build ``demo:<name>`` into ``models_dir/<name>`` unless already built; return its path.

    Safe when several deployments (threads) or servers (processes) ask for the same model at
    once: one build runs at a time in a process, each build goes to its own temporary folder, and the
    first finished build is the one kept (a folder is renamed into place, never overwritten).
    """
    if name not in BUILDERS:
        raise EngineUnavailableError(f"Unknown demo model 'demo:{name}'. Known: {', '.join(sorted(BUILDERS))}.")
    out = models_dir / name
    if (out / _MARK).exists():
        return out
    with _BUILD_LOCK:
        if (out / _MARK).exists():  # built by another thread while this one waited
            return out
        if progress:
            progress(f"building demo model '{name}'")
        module, func = BUILDERS[name].split(":")
        builder: Callable[[Path], None] = getattr(importlib.import_module(module), func)
        models_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=models_dir))
        try:
            builder(tmp)
            (tmp / _MARK).write_text("ok\n")
            if not (out / _MARK).exists():
                shutil.rmtree(out, ignore_errors=True)  # a leftover without the mark is not a model
                try:
                    tmp.rename(out)  # atomic: a half-built model is never used
                except OSError:  # another process renamed its build into place first
                    if not (out / _MARK).exists():
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
