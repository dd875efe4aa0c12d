"""The engine interface: one small abstract class per task, plus the common lifecycle.

An engine is the only code that touches a model library. It is constructed with its card
and resolved weights, ``load()``-ed off the event loop by the runtime, serves requests
through its task method, and ``unload()``-s to free memory. Heavy libraries are imported
inside methods so that importing an engine module is cheap (the catalog validates options).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from mmserve.catalog.schema import ModelCard
from mmserve.engines.types import (
    AudioChunk,
    ChatDelta,
    ChatInput,
    ImageGenInput,
    ImageGenOutput,
    ImageInputSize,
    SpeechInput,
    Transcript,
    TranscriptionInput,
    VideoGenInput,
    VideoGenOutput,
)

ProgressCallback = Callable[[float], None]  # fraction done in [0, 1]


class EngineOptions(BaseModel):
    """Options common to every engine; engines subclass this to add their own."""

    model_config = ConfigDict(extra="forbid")


class Engine(ABC):
    task: ClassVar[str]
    Options: ClassVar[type[EngineOptions]] = EngineOptions

    def __init__(self, card: ModelCard, *, source: Path | None, device: str) -> None:
        self.card = card
        self.source = source
        self.device = device
        self.options = self.Options.model_validate(card.options)

    @abstractmethod
    def load(self) -> None:
        """Load weights (blocking; the runtime calls it in a worker thread)."""

    def unload(self) -> None:  # noqa: B027 - optional hook, nothing to free by default
        """Drop every reference to the model so its memory is freed."""

    def memory_bytes(self) -> int | None:
        """Approximate resident size once loaded, for the memory budget (None: unknown)."""
        return None


class ChatEngine(Engine):
    task = "chat"

    @abstractmethod
    def generate(self, request: ChatInput) -> AsyncGenerator[ChatDelta, None]:
        """Stream the completion. The first delta carries ``prompt_tokens``; the last, ``finish_reason``."""

    def context_length(self) -> int | None:
        return self.card.capabilities.context_length

    def image_input_size(self) -> ImageInputSize | None:
        """How the model's processor resizes images; the media layer downscales to it first."""
        return card_image_input_size(self.card)


def card_image_input_size(card: ModelCard) -> ImageInputSize | None:
    """The card's declared image input size (``limits.image_input_side``), known before loading."""
    side = card.limits.image_input_side
    return ImageInputSize(shortest_edge=side) if side else None


class ImageEngine(Engine):
    task = "image-generation"

    @abstractmethod
    async def generate(self, request: ImageGenInput, progress: ProgressCallback | None = None) -> ImageGenOutput: ...


class SpeechEngine(Engine):
    task = "speech"

    @abstractmethod
    def synthesize(self, request: SpeechInput) -> AsyncIterator[AudioChunk]:
        """Stream audio as it is produced."""


class TranscriptionEngine(Engine):
    task = "transcription"

    @abstractmethod
    async def transcribe(self, request: TranscriptionInput) -> Transcript: ...


class VideoEngine(Engine):
    task = "video-generation"

    @abstractmethod
    async def generate(self, request: VideoGenInput, progress: ProgressCallback | None = None) -> VideoGenOutput: ...
