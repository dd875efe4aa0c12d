"""Engine name -> implementation, imported lazily so that only the extras in use are needed."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from mmserve.errors import EngineUnavailableError

if TYPE_CHECKING:
    from mmserve.engines.base import Engine


@dataclass(frozen=True)
class EngineSpec:
    task: str
    target: str  # "module:Class"
    extra: str  # the pip extra that provides its libraries


ENGINES: dict[str, EngineSpec] = {
    "transformers-chat": EngineSpec(
        "chat", "mmserve.engines.transformers_chat.engine:TransformersChatEngine", "transformers"
    ),
    "upstream-chat": EngineSpec("chat", "mmserve.engines.upstream.chat:UpstreamChatEngine", "core"),
    "upstream-image": EngineSpec("image-generation", "mmserve.engines.upstream.image:UpstreamImageEngine", "core"),
    "upstream-speech": EngineSpec("speech", "mmserve.engines.upstream.speech:UpstreamSpeechEngine", "core"),
    "upstream-transcription": EngineSpec(
        "transcription", "mmserve.engines.upstream.transcription:UpstreamTranscriptionEngine", "core"
    ),
    "upstream-embedding": EngineSpec("embedding", "mmserve.engines.upstream.embedding:UpstreamEmbeddingEngine", "core"),
    "upstream-video": EngineSpec("video-generation", "mmserve.engines.upstream.video:UpstreamVideoEngine", "video"),
    # vLLM itself runs in its own environment (options.python): mmserve needs nothing more for it
    "vllm": EngineSpec("chat", "mmserve.engines.vllm.engine:VLLMChatEngine", "core"),
    "espeak-ng": EngineSpec("speech", "mmserve.engines.espeak.engine:EspeakEngine", "speech"),
    "transformers-tts": EngineSpec("speech", "mmserve.engines.transformers_tts:TransformersTTSEngine", "transformers"),
    "pocketsphinx": EngineSpec("transcription", "mmserve.engines.pocketsphinx_asr:PocketsphinxEngine", "speech"),
    "whisper": EngineSpec("transcription", "mmserve.engines.whisper.engine:WhisperEngine", "transformers"),
    "diffusers-image": EngineSpec(
        "image-generation", "mmserve.engines.diffusers_image.engine:DiffusersImageEngine", "diffusers"
    ),
    "diffusers-video": EngineSpec("video-generation", "mmserve.engines.diffusers_video:DiffusersVideoEngine", "video"),
    "transformers-embedding": EngineSpec(
        "embedding", "mmserve.engines.transformers_embedding:TransformersEmbeddingEngine", "transformers"
    ),
}


def engine_class(name: str) -> type[Engine]:
    spec = ENGINES.get(name)
    if spec is None:
        raise EngineUnavailableError(f"Unknown engine '{name}'.")
    module, cls = spec.target.split(":")
    found: type[Engine] = getattr(importlib.import_module(module), cls)
    return found


def engine_options_model(name: str) -> type[BaseModel]:
    return engine_class(name).Options


def import_names(module: str, *names: str) -> None:
    """Import ``module`` and the lazily imported classes ``names`` of it (transformers and diffusers
    import a class's own module when it is first asked for); see ``Engine.import_libraries``."""
    imported = importlib.import_module(module)
    for name in names:
        getattr(imported, name)


def require(module: str, engine: str) -> None:
    """Import check with an actionable message naming the extra to install."""
    try:
        importlib.import_module(module)
    except ImportError:
        extra = ENGINES[engine].extra if engine in ENGINES else "all"
        raise EngineUnavailableError(
            f"Engine '{engine}' needs the '{module}' package: pip install 'mmserve[{extra}]'."
        ) from None
