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
    EmbeddingInput,
    EmbeddingOutput,
    ImageGenInput,
    ImageGenOutput,
    Segment,
    ServingStats,
    SpeechInput,
    Transcript,
    TranscriptionInput,
    VideoGenInput,
    VideoGenOutput,
)
from mmserve.errors import InvalidRequestError, ModelCapabilityError
from mmserve.media.image.decode import ImageInputSize

if TYPE_CHECKING:
    from PIL.Image import Image

    from mmserve.media.image.ingest import MediaIngestor

ProgressCallback = Callable[[float], None]  # fraction done in [0, 1]
SegmentCallback = Callable[[Segment], None]  # a transcript segment, as soon as it is decoded
# (preview index, one image per image of the batch): a partial image while a diffusion runs
PreviewCallback = Callable[[int, "list[Image]"], None]
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
    #: Whether the engine computes with torch (its replicas share the process's intra-op threads).
    uses_torch: ClassVar[bool] = False
    #: False for engines whose model runs in a process of its own (vLLM): the runtime loads the
    #: in-process ones one at a time (model libraries' lazy imports are not thread-safe), and
    #: need not hold them back while such a server takes its minute to start.
    loads_in_process: ClassVar[bool] = True

    def __init__(self, card: ModelCard, *, source: Path | None, device: str) -> None:
        self.card = card
        self.source = source
        self.device = device
        self.options = self.Options.model_validate(card.options)

    @abstractmethod
    def load(self) -> None:
        """Load weights (blocking; the runtime calls it in a worker thread)."""

    @classmethod  # noqa: B027 - optional hook: an engine with no heavy library imports nothing
    def import_libraries(cls, options: EngineOptions) -> None:
        """Import the libraries :meth:`load` will use, and nothing of a model (blocking).

        Called before any model of the process loads, after which the heap is frozen without a
        collection (:func:`mmserve.heap.freeze_imports`): the collection after the loads then
        skips the libraries' objects. An ImportError here is left for :meth:`load` to report.
        """

    def abort_load(self) -> None:  # noqa: B027 - optional hook: by default a load runs to its end
        """The server is stopping while :meth:`load` runs (in another thread): make it end soon.

        Called from another thread than the load's. An engine that can stop its load midway (one
        that waits for a server of its own to start) makes :meth:`load` raise, having freed what
        it started; the runtime then goes on stopping instead of waiting for the load.
        """

    def unload(self) -> None:  # noqa: B027 - optional hook, nothing to free by default
        """Drop every reference to the model so its memory is freed."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release event-loop resources (HTTP clients...) before ``unload()``; called on the loop."""

    def memory_bytes(self) -> int | None:
        """Approximate resident size once loaded, for the memory budget (None: unknown)."""
        return None

    @classmethod
    def default_concurrency(cls, options: EngineOptions, device: str) -> int:
        """Requests a replica runs at once when the card sets no ``deployment.max_concurrency``."""
        return 4

    def batch_size(self) -> int | None:
        """Generations running in the engine's batch now (None: the engine does not batch)."""
        return None

    @property
    def available(self) -> bool:
        """Whether the loaded engine can serve now (False while its server restarts)."""
        return True

    async def refresh_stats(self) -> None:  # noqa: B027 - optional hook
        """Update :meth:`stats` (called on the loop before ``/metrics`` is rendered)."""

    def stats(self) -> ServingStats | None:
        """Queue depth, running requests and time to first token of the engine's own server, if it has one."""
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
    #: Whether the engine continues a raw prompt (``ChatInput.prompt``: legacy completions).
    raw_prompts: ClassVar[bool] = False
    #: Whether the engine returns token log-probabilities (``logprobs`` / ``top_logprobs``).
    supports_logprobs: ClassVar[bool] = False
    #: Whether the engine can keep generating past end-of-sequence (``ignore_eos``).
    supports_ignore_eos: ClassVar[bool] = False

    @classmethod
    def check_request(cls, options: EngineOptions, request: ChatInput) -> None:
        params = request.params
        if request.prompt is not None and not cls.raw_prompts:
            raise ModelCapabilityError(
                "This model's engine takes chat messages only, not a raw prompt: "
                "use POST /v1/chat/completions (or a model served by a local engine).",
                param="prompt",
            )
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
        if params.ignore_eos and request.constraint is not None:
            raise InvalidRequestError(
                "ignore_eos cannot be combined with an enforced output format (response_format json_schema or "
                "json_object, tool_choice required or named): the format ends the answer. Remove one of them.",
                param="ignore_eos",
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
    async def generate(
        self,
        request: ImageGenInput,
        progress: ProgressCallback | None = None,
        preview: PreviewCallback | None = None,
    ) -> ImageGenOutput:
        """Make ``request.n`` images; ``preview`` gets up to ``request.partial_images`` previews (on the loop)."""

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


class EmbeddingEngine(Engine):
    task = "embedding"

    @abstractmethod
    async def embed(self, request: EmbeddingInput) -> EmbeddingOutput:
        """One vector per item, in order. Inputs the model cannot take (too long, an image for a
        text-only model, a token id outside the vocabulary) are an InvalidRequestError naming the item's param."""

    def dimensions(self) -> int | None:
        """The length of this model's vectors (the card's ``embedding_dimensions``; engines read the model)."""
        return self.card.capabilities.embedding_dimensions

    def image_input_size(self) -> ImageInputSize | None:
        """How the model's processor resizes images; the media layer downscales to it first."""
        return card_image_input_size(self.card)
