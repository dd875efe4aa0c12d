"""Engines whose model runs in another process: the same task interfaces, so services cannot tell.

A remote engine forwards each call to its replica's :class:`~mmserve.runtime.actor.EngineActor`
through a :class:`Handle`: a Ray actor's (:mod:`mmserve.runtime.ray_handle`) or a worker
process's (:mod:`mmserve.runtime.process`), and turns the actor's stream back into the
engine's return shape. When the replica dies before any output reached the caller, the call is
retried on a new one; a stream that already sent output continues there when it is
reproducible (seeded or greedy chat: the new replica makes the same tokens, the ones already
sent are skipped), and fails with a 503 otherwise (:func:`lost`). Errors the engine raised on
purpose (``MMServeError``: a bad voice, an oversized prompt) arrive as raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol, runtime_checkable

from mmserve.cards import ModelCard
from mmserve.engines.base import (
    ChatEngine,
    CheckpointCallback,
    EmbeddingEngine,
    Engine,
    ImageEngine,
    PreviewCallback,
    ProgressCallback,
    SegmentCallback,
    SpeechEngine,
    TranscriptionEngine,
    VideoEngine,
)
from mmserve.engines.types import (
    AudioChunk,
    ChatDelta,
    ChatInput,
    EmbeddingInput,
    EmbeddingOutput,
    ImageGenInput,
    ImageGenOutput,
    SpeechInput,
    Transcript,
    TranscriptionInput,
    VideoGenInput,
    VideoGenOutput,
)
from mmserve.errors import EngineError, EngineUnavailableError
from mmserve.media.image.decode import ImageInputSize

MAX_RESPAWNS = 2
# Pings a replica may miss in a row before it counts as hung. One slow answer is a busy machine,
# not a dead replica: a replacement started beside a live actor would wait for the slot it holds.
MISSED_PINGS = 3
PING_TIMEOUT_S = 10.0  # a ping not answered by then is a missed one
BATCH_SIZE_TIMEOUT_S = 1.0  # a scrape does not wait longer for a replica's batch size


@runtime_checkable
class Handle(Protocol):
    """What a remote engine calls: a Ray actor's :class:`~mmserve.runtime.ray_handle.ReplicaHandle`,
    or a worker process's :class:`~mmserve.runtime.process.WorkerHandle`."""

    restarts: int

    @property
    def info(self) -> dict[str, Any]: ...

    def stream(self, method: str, *args: Any, replayable: bool = False) -> AsyncIterator[Any]: ...

    async def call(self, method: str, *args: Any) -> Any: ...

    async def check(self, timeout: float) -> bool: ...

    async def release(self) -> None: ...


def lost(sent: int, replayable: bool, attempt: int) -> EngineUnavailableError | None:
    """The error for a call whose replica died after ``sent`` items and ``attempt`` replacements;
    None when it goes to a new replica: nothing was sent yet, or the call makes the same items
    again (``replayable``), and :data:`MAX_RESPAWNS` is not reached."""
    if (sent and not replayable) or attempt >= MAX_RESPAWNS:
        return EngineUnavailableError("The replica serving this request was lost while answering; retry the request.")
    return None


class _Remote(Engine):
    """What every remote engine shares: no local load (the actor loaded it), unload kills the actor."""

    def __init__(self, card: ModelCard, handle: Handle) -> None:
        # Engine.__init__ is not called: it validates the options against the base class, while
        # the real engine (which checked them) lives in the actor.
        self.card = card
        self.source = None
        self.device = "remote"
        self.handle = handle
        self._batch_size: int | None = None

    def load(self) -> None:
        """Loaded by the actor."""

    async def refresh_stats(self) -> None:
        """The engine's running batch, asked before a ``/metrics`` scrape (a replica that does not
        answer keeps its last figure)."""
        with contextlib.suppress(Exception):
            size = await asyncio.wait_for(self.handle.call("batch_size"), BATCH_SIZE_TIMEOUT_S)
            self._batch_size = int(size) if size is not None else None

    def batch_size(self) -> int | None:
        return self._batch_size

    async def aclose(self) -> None:
        await self.handle.release()

    def memory_bytes(self) -> int | None:
        value = self.handle.info.get("memory_bytes")
        return int(value) if value else None

    @property
    def node_id(self) -> str:
        return str(self.handle.info.get("node_id"))


class RemoteChatEngine(_Remote, ChatEngine):
    async def generate(self, request: ChatInput) -> AsyncGenerator[ChatDelta, None]:
        params = request.params
        replayable = params.seed is not None or params.temperature == 0  # the same tokens again
        async for delta in self.handle.stream("chat", request, replayable=replayable):
            yield delta

    def context_length(self) -> int | None:
        value = self.handle.info.get("context_length")
        return int(value) if value else self.card.capabilities.context_length

    def image_input_size(self) -> ImageInputSize | None:
        size = self.handle.info.get("image_input_size")
        return size if isinstance(size, ImageInputSize) else super().image_input_size()


class RemoteImageEngine(_Remote, ImageEngine):
    async def generate(
        self,
        request: ImageGenInput,
        progress: ProgressCallback | None = None,
        preview: PreviewCallback | None = None,
    ) -> ImageGenOutput:
        items = self.handle.stream("image", request)
        return await _progress_stream(items, progress, preview)  # type: ignore[no-any-return]


class RemoteSpeechEngine(_Remote, SpeechEngine):
    async def synthesize(self, request: SpeechInput) -> AsyncGenerator[AudioChunk, None]:
        async for chunk in self.handle.stream("speech", request):
            yield chunk

    def voices(self) -> list[str]:
        return list(self.handle.info.get("voices") or super().voices())


class RemoteTranscriptionEngine(_Remote, TranscriptionEngine):
    async def transcribe(self, request: TranscriptionInput, on_segment: SegmentCallback | None = None) -> Transcript:
        async for kind, value in self.handle.stream("transcribe", request):
            if kind == "segment" and on_segment is not None:
                on_segment(value)
            elif kind == "transcript":
                return value  # type: ignore[no-any-return]
        raise EngineError("The replica ended the transcription without a result.")


class RemoteVideoEngine(_Remote, VideoEngine):
    async def generate(
        self,
        request: VideoGenInput,
        progress: ProgressCallback | None = None,
        checkpoint: CheckpointCallback | None = None,
    ) -> VideoGenOutput:
        return await _progress_stream(self.handle.stream("video", request), progress)  # type: ignore[no-any-return]


class RemoteEmbeddingEngine(_Remote, EmbeddingEngine):
    async def embed(self, request: EmbeddingInput) -> EmbeddingOutput:
        result = None
        async for output in self.handle.stream("embed", request, replayable=True):  # embeddings are deterministic
            result = output
        if result is None:
            raise EngineError("The replica ended without vectors.")
        return result  # type: ignore[no-any-return]

    def dimensions(self) -> int | None:
        value = self.handle.info.get("dimensions")
        return int(value) if value else super().dimensions()

    def image_input_size(self) -> ImageInputSize | None:
        size = self.handle.info.get("image_input_size")
        return size if isinstance(size, ImageInputSize) else super().image_input_size()


async def _progress_stream(
    items: AsyncIterator[Any], progress: ProgressCallback | None, preview: PreviewCallback | None = None
) -> Any:
    """Progress fractions go to ``progress`` (which may raise to cancel), ``("preview", index, images)``
    to ``preview``; the last item is the result."""
    result: Any = None
    gen = items
    try:
        async for item in gen:
            if isinstance(item, float):
                if progress is not None:
                    progress(item)  # raising here ends the stream: the actor is cancelled
            elif isinstance(item, tuple) and item and item[0] == "preview":
                if preview is not None:
                    preview(item[1], item[2])
            else:
                result = item
    finally:
        aclose = getattr(gen, "aclose", None)
        if aclose is not None:
            await aclose()
    if result is None:
        raise EngineError("The replica ended without a result.")
    return result


REMOTE_CLASSES: dict[str, type[_Remote]] = {
    "chat": RemoteChatEngine,
    "image-generation": RemoteImageEngine,
    "speech": RemoteSpeechEngine,
    "transcription": RemoteTranscriptionEngine,
    "video-generation": RemoteVideoEngine,
    "embedding": RemoteEmbeddingEngine,
}
