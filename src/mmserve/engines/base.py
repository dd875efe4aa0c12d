"""The engine interface: one small abstract class per task, plus the common lifecycle.

An engine is the only code that touches a model library. It is constructed with its card
and resolved weights, ``load()``-ed off the event loop by the runtime, serves requests
through its task method, and ``unload()``-s to free memory. Heavy libraries are imported
inside methods so that importing an engine module is cheap (the catalog validates options).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mmserve.cards import ModelCard
from mmserve.engines.types import (
    AudioChunk,
    ChatDelta,
    ChatInput,
    ImageGenInput,
    ImageGenOutput,
    Segment,
    SpeechInput,
    Transcript,
    TranscriptionInput,
    VideoGenInput,
    VideoGenOutput,
)
from mmserve.errors import InvalidRequestError
from mmserve.media.image.decode import ImageInputSize

if TYPE_CHECKING:
    from mmserve.media.image.ingest import MediaIngestor

ProgressCallback = Callable[[float], None]  # fraction done in [0, 1]
SegmentCallback = Callable[[Segment], None]  # a transcript segment, as soon as it is decoded
# Keeps a dict with the job, durably, before the engine goes on (given back as VideoGenInput.resume).
CheckpointCallback = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class EngineContext:
    """What the server lends its engines (the runtime sets it before ``load()``).

    Engines that reach the network (the upstream providers) fetch the links a provider returns
    and decode the files it sends through the same media layer as the API's own inputs.
    """

    media: MediaIngestor | None = None


class EngineOptions(BaseModel):
    """Options common to every engine; engines subclass this to add their own."""

    model_config = ConfigDict(extra="forbid")


class Engine(ABC):
    task: ClassVar[str]
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    #: Runs in the gateway process even on a Ray cluster: it holds no weights, only a client of a
    #: remote service (an upstream provider), so a replica actor would only add a hop.
    in_gateway: ClassVar[bool] = False
    context: EngineContext = EngineContext()

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

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release event-loop resources (HTTP clients...) before ``unload()``; called on the loop."""

    def memory_bytes(self) -> int | None:
        """Approximate resident size once loaded, for the memory budget (None: unknown)."""
        return None

    @classmethod  # noqa: B027 - optional hook: nothing to refuse by default
    def check_request(cls, options: EngineOptions, request: Any) -> None:
        """Refuse, before a model is loaded or a job queued, what this engine cannot do.

        ``request`` is the task's input (:class:`ImageGenInput`, :class:`VideoGenInput`, ...);
        raise :class:`~mmserve.errors.InvalidRequestError` naming the field. Services call it
        through :meth:`mmserve.runtime.runtime.Runtime.check_request`.
        """


class ChatEngine(Engine):
    task = "chat"
    #: Whether the engine returns token log-probabilities (``logprobs`` / ``top_logprobs``).
    supports_logprobs: ClassVar[bool] = False
    #: Whether the engine can keep generating past end-of-sequence (``ignore_eos``).
    supports_ignore_eos: ClassVar[bool] = False

    @classmethod
    def check_request(cls, options: EngineOptions, request: ChatInput) -> None:
        params = request.params
        if params.logprobs and not cls.supports_logprobs:
            raise InvalidRequestError(
                "This model's engine does not return log-probabilities. Remove 'logprobs' and 'top_logprobs'.",
                param="logprobs",
                code="unsupported_parameter",
            )
        if params.ignore_eos and not cls.supports_ignore_eos:
            raise InvalidRequestError(
                "This model's engine cannot generate past the end of sequence. Remove 'ignore_eos'.",
                param="ignore_eos",
                code="unsupported_parameter",
            )

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
    #: Whether the engine can make images with a transparent background (RGBA output).
    supports_transparency: ClassVar[bool] = False

    @abstractmethod
    async def generate(self, request: ImageGenInput, progress: ProgressCallback | None = None) -> ImageGenOutput: ...

    @classmethod
    def check_request(cls, options: EngineOptions, request: ImageGenInput) -> None:
        if request.transparent_background and not cls.supports_transparency:
            raise InvalidRequestError(
                "This model cannot make transparent backgrounds (its pipeline outputs opaque RGB). "
                "Use background 'auto' or 'opaque'.",
                param="background",
                code="unsupported_background",
            )


class SpeechEngine(Engine):
    task = "speech"

    @abstractmethod
    def synthesize(self, request: SpeechInput) -> AsyncIterator[AudioChunk]:
        """Stream audio as it is produced.

        Problems with the request (an unknown voice, ...) are raised before the first chunk,
        so that the service can still answer them with a 4xx.
        """

    def voices(self) -> list[str]:
        """The voice names this engine accepts (for listings and error messages)."""
        return list(self.card.capabilities.voices)


class TranscriptionEngine(Engine):
    task = "transcription"

    @abstractmethod
    async def transcribe(self, request: TranscriptionInput, on_segment: SegmentCallback | None = None) -> Transcript:
        """Transcribe (or translate) the whole input.

        ``on_segment``, when given, is called with each segment as soon as it is decoded, possibly
        from a worker thread (streaming responses use it); the returned transcript has them all.
        """


class VideoEngine(Engine):
    task = "video-generation"
    #: Used when neither the request nor the card's ``capabilities.fps`` / ``sizes`` say.
    default_fps: ClassVar[int] = 16
    default_size: ClassVar[tuple[int, int]] = (832, 480)

    @abstractmethod
    async def generate(
        self,
        request: VideoGenInput,
        progress: ProgressCallback | None = None,
        checkpoint: CheckpointCallback | None = None,
    ) -> VideoGenOutput:
        """Return exactly ``request.num_frames`` frames at ``request.width`` x ``request.height``.

        ``progress`` is called with the fraction done; an exception it raises aborts the
        generation and propagates unchanged (the job runner cancels jobs this way).
        ``checkpoint`` keeps what a later run needs to resume (a provider's job id) with the job;
        that run gets it back in ``request.resume``. Engines that cannot resume ignore it.
        """

    @classmethod
    def check_request(cls, options: EngineOptions, request: VideoGenInput) -> None:
        """Refuse, before a job is queued, what this engine cannot make (raise InvalidRequestError)."""
