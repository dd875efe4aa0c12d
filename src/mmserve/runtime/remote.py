"""Engines whose model runs in a Ray actor: the same task interfaces, so services cannot tell.

A remote engine forwards each call to its replica's actor (:mod:`mmserve.runtime.actor`) and
turns the actor's stream back into the engine's return shape. When the actor's node dies (or
the actor does) before any output reached the caller, the call is retried on a new actor that
Ray places on a live node (:meth:`ReplicaHandle.replace`); a stream that already sent output
continues there when it is reproducible (seeded or greedy chat: the new replica makes the same
tokens, the ones already sent are skipped), and fails with a 503 otherwise. Errors the engine
raised on purpose (``MMServeError``: a bad voice, an oversized prompt) arrive as raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
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
from mmserve.errors import EngineError, EngineUnavailableError, MMServeError
from mmserve.media.image.decode import ImageInputSize

log = logging.getLogger("mmserve.cluster")

MAX_RESPAWNS = 2
# Pings a replica may miss in a row before it counts as hung. One slow answer is a busy machine,
# not a dead replica: a replacement started beside a live actor would wait for the slot it holds.
MISSED_PINGS = 3
PING_TIMEOUT_S = 10.0  # a ping not answered by then is a missed one
RELEASE_TIMEOUT_S = 10.0
# The replica actor's concurrency group for pings, attaching and releasing (cluster.py makes the
# actor class with it): they never wait behind the calls that fill the default group. A shared
# replica may be sent as many calls as its card admits by every gateway at once; its pings
# queued behind them would time out, and a busy replica would be "replaced" as hung.
CONTROL_GROUP = "control"
CONTROL_SLOTS = 4
BATCH_SIZE_TIMEOUT_S = 1.0  # a scrape does not wait longer for a replica's batch size


@runtime_checkable
class Handle(Protocol):
    """What a remote engine calls: a Ray actor's :class:`ReplicaHandle`, or a worker process's
    :class:`mmserve.runtime.process.WorkerHandle`."""

    restarts: int

    @property
    def info(self) -> dict[str, Any]: ...

    def stream(self, method: str, *args: Any, replayable: bool = False) -> AsyncIterator[Any]: ...

    async def call(self, method: str, *args: Any) -> Any: ...

    async def check(self, timeout: float) -> bool: ...

    async def release(self) -> None: ...


class ReplicaHandle:
    """One replica's actor, replaced by ``respawn`` when it dies (the deployment's loader makes the new one).

    With ``gateway``, the actor is shared with other gateways (:mod:`mmserve.runtime.lease`):
    each ping renews this gateway's lease on it for ``lease_s``, and :meth:`release` gives the
    lease back instead of killing it; both go through the actor's :data:`CONTROL_GROUP`.
    Without, it is this gateway's alone: released is killed.
    """

    def __init__(
        self,
        actor: Any,
        info: dict[str, Any],
        respawn: Callable[[], Awaitable[tuple[Any, dict[str, Any]]]],
        *,
        gateway: str | None = None,
        lease_s: float = 0.0,
    ):
        self.actor = actor
        self.info = info
        self.gateway = gateway
        self.lease_s = lease_s
        self.generation = 0
        self.restarts = 0
        self.missed_pings = 0
        self._respawn = respawn
        self._lock = asyncio.Lock()

    async def replace(self, seen: int) -> None:
        """A new actor, unless another call already replaced the one that failed (generation ``seen``)."""
        async with self._lock:
            if self.generation != seen:
                return
            log.warning("replica actor on node %s lost; starting a new one", str(self.info.get("node_id"))[:12])
            # Killed first (a no-op when it is dead already): a hung actor still holds its CPUs and
            # slots, which the new one may need, and its callers then fail over to the new one.
            self.kill()
            self.actor, self.info = await self._respawn()
            self.missed_pings = 0
            self.generation += 1
            self.restarts += 1

    async def stream(self, method: str, *args: Any, replayable: bool = False) -> AsyncIterator[Any]:
        """Items of an actor generator, retried on a new actor if it dies.

        A retry is safe while nothing was yielded. After that only a ``replayable`` call (one
        that makes the same items again: seeded or greedy sampling) continues, on the new
        actor, past the items already yielded.
        """
        import ray.exceptions as rex

        attempt, sent = 0, 0
        while True:
            seen, index, ended = self.generation, 0, False
            gen = getattr(self.actor, method).options(num_returns="streaming").remote(*args)
            try:
                async for ref in gen:
                    items, ended = await _value(ref)  # the items that were ready together (actor.batched)
                    for item in items:
                        index += 1
                        if index > sent:
                            sent = index
                            yield item
                    if ended:  # the last batch: no need to wait for the task's end (a round trip)
                        return
                return
            except (rex.ActorDiedError, rex.ActorUnavailableError, rex.NodeDiedError) as e:
                if (error := lost(sent, replayable, attempt)) is not None:
                    raise error from e
                attempt += 1
                await self.replace(seen)
            except rex.RayTaskError as e:
                cause = e.cause
                if isinstance(cause, MMServeError):
                    raise cause from None
                log.error("remote engine failed: %s", e)
                raise EngineError("The model failed while serving this request.") from None
            finally:
                if not ended:
                    _cancel(gen)  # stops the actor's generator if the caller left early

    async def call(self, method: str, *args: Any) -> Any:
        import ray.exceptions as rex

        for attempt in range(MAX_RESPAWNS + 1):
            seen = self.generation
            try:
                return await getattr(self.actor, method).remote(*args)
            except (rex.ActorDiedError, rex.ActorUnavailableError, rex.NodeDiedError):
                if attempt == MAX_RESPAWNS:
                    raise
                await self.replace(seen)
        raise AssertionError("unreachable")

    async def check(self, timeout: float) -> bool:
        """Ping the actor; replace it when Ray says it died or it missed :data:`MISSED_PINGS` in a row.

        Returns whether it was replaced.
        """
        import ray.exceptions as rex

        seen = self.generation
        try:
            # a shared replica's ping renews this gateway's lease on it
            if self.gateway:
                ping = self.actor.ping.options(concurrency_group=CONTROL_GROUP).remote(self.gateway, self.lease_s)
            else:
                ping = self.actor.ping.remote()
            await asyncio.wait_for(ping, timeout)
            self.missed_pings = 0
            return False
        except (rex.ActorDiedError, rex.ActorUnavailableError, rex.NodeDiedError):
            pass  # dead: replace now
        except TimeoutError:
            self.missed_pings += 1
            if self.missed_pings < MISSED_PINGS:
                node = str(self.info.get("node_id"))[:12]
                log.warning("replica on node %s missed a ping (%d in a row)", node, self.missed_pings)
                return False
        if self.generation != seen:
            return False  # a caller replaced it meanwhile
        await self.replace(seen)
        return True

    async def release(self) -> None:
        """This gateway is done with the replica: its lease is given back (a shared actor ends when
        no gateway holds it), or the actor is killed (one of this gateway's own)."""
        if self.gateway is None:
            self.kill()
            return
        with contextlib.suppress(Exception):  # gone already, or unreachable: the lease runs out anyway
            release = self.actor.release.options(concurrency_group=CONTROL_GROUP)
            await asyncio.wait_for(release.remote(self.gateway), RELEASE_TIMEOUT_S)

    def kill(self) -> None:
        import ray

        with contextlib.suppress(Exception):  # already gone
            ray.kill(self.actor, no_restart=True)


def lost(sent: int, replayable: bool, attempt: int) -> EngineUnavailableError | None:
    """The error for a call whose replica died after ``sent`` items and ``attempt`` replacements;
    None when it goes to a new replica: nothing was sent yet, or the call makes the same items
    again (``replayable``), and :data:`MAX_RESPAWNS` is not reached."""
    if (sent and not replayable) or attempt >= MAX_RESPAWNS:
        return EngineUnavailableError("The replica serving this request was lost while answering; retry the request.")
    return None


async def _value(ref: Any) -> Any:
    """The object of a ref that a stream yielded (so it exists: ``async for`` waited for it).

    ``await ref`` asks Ray's IO thread for it and is woken from there: measured 0.1-0.5 ms a
    batch on a busy machine. An object that is here already (a small one comes inside the
    stream's report) is read at once; one that is not (a large one in another node's store) is
    awaited, never fetched while this loop blocks.
    """
    import ray

    ready, _ = ray.wait([ref], timeout=0, fetch_local=True)
    return ray.get(ref) if ready else await ref


def _cancel(gen: Any) -> None:
    """Stop the actor generator (a no-op once it finished)."""
    import ray

    with contextlib.suppress(Exception):  # finished, or its actor is gone: nothing to stop
        ray.cancel(gen)


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
