"""The Ray actor that holds one replica's engine on a cluster node (see :mod:`mmserve.runtime.cluster`).

It builds the card's engine where Ray placed it (resolving the source on that node: a path on
shared storage, a Hugging Face id in that node's cache, or a demo model built there) and
serves the engine's task method. Inputs arrive decoded and bounded by the gateway (PIL
images, numpy audio: both pickle), outputs go back the same way. Streams are actor
generators of batches (:func:`batched`): each delta, audio chunk, transcript segment or
progress step is an item of a batch, and the items that are ready go together.

Cancellation: when the gateway stops consuming a stream (its client left, a video job was
cancelled), Ray cancels the generator here; the engine's progress callback then raises at the
next step, like the in-process runner's cancel flag.

Sharing: the actor is detached and named by its card, so every gateway with that card attaches
to it (:mod:`mmserve.runtime.cluster`); it ends itself once no gateway holds a lease on it and
no call runs (:mod:`mmserve.runtime.lease`), checked by a watcher thread every ``WATCH_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

from mmserve import heap
from mmserve.cards import ModelCard
from mmserve.catalog.sources import resolve_source
from mmserve.engines.base import (
    ChatEngine,
    EmbeddingEngine,
    Engine,
    ImageEngine,
    SpeechEngine,
    TranscriptionEngine,
    VideoEngine,
)
from mmserve.engines.registry import engine_class
from mmserve.engines.types import (
    AudioChunk,
    ChatDelta,
    ChatInput,
    EmbeddingInput,
    EmbeddingOutput,
    ImageGenInput,
    SpeechInput,
    TranscriptionInput,
    VideoGenInput,
)
from mmserve.runtime.lease import Holders

log = logging.getLogger("mmserve.cluster")
WATCH_S = 1.0  # how often a shared replica looks whether any gateway still holds it

# At most one batch per COALESCE_S (a stream's last batch goes at once). Why batches: every item
# of an actor generator is a report RPC here and, on the gateway, a wake-up of its event loop and
# an object to fetch; measured (tiny chat model, 4 tokens), a request streamed as 5 items cost
# ~3.5 ms more than the same deltas in one call, and the end of the stream (the task's reply) ~1 ms
# more. A token that comes within COALESCE_S of the previous batch waits for the rest of that
# window, so a streaming client sees fast tokens in twos and threes, never later than this.
COALESCE_S = 0.002
# A client that waits for the whole answer (not streamed) needs no delta before the last: its
# deltas go at most once per WHOLE_ANSWER_WINDOW_S, the first one included, so a short answer
# travels as one batch (measured: ~1 ms of the gateway's time saved per batch); the batches
# before the last still come, so the gateway meters what was made when the client leaves early.
WHOLE_ANSWER_WINDOW_S = 0.1
Batch = tuple[list[Any], bool]  # (items, whether the stream ends with them)


class Cancelled(Exception):
    """Raised from a progress callback once the gateway has cancelled the call."""


def _batched_method(inner: str) -> Callable[[Any, Any], AsyncIterator[Batch]]:
    """An actor method streaming, in batches, what the actor's method ``inner`` yields for a request."""

    async def method(self: Any, request: Any) -> AsyncIterator[Batch]:
        self.holders.running += 1  # a running call keeps the replica, whatever the leases say
        streamed = getattr(request, "streamed", True)
        window = self.coalesce_s if streamed else WHOLE_ANSWER_WINDOW_S
        try:
            items = getattr(self, inner)(request)
            async with contextlib.aclosing(batched(items, window, hold_first=not streamed)) as batches:
                async for batch in batches:
                    yield batch
        finally:
            self.holders.running -= 1

    method.__name__ = method.__qualname__ = inner.removeprefix("_")
    return method


class EngineActor:
    #: A streamed call's batch window (see COALESCE_S): what one more message costs decides it.
    coalesce_s: float = COALESCE_S

    def __init__(
        self,
        card: dict[str, Any],
        base_dir: str,
        models_dir: str,
        device: str,
        gateway: str | None = None,
        lease_s: float = 0.0,
    ) -> None:
        """Load the card's engine. With ``gateway``, a shared replica: held by that gateway for
        ``lease_s`` from the end of the load (the time to attach), then by whoever renews a lease."""
        self.card = ModelCard.model_validate(card)
        self.holders = Holders()
        source = resolve_source(self.card, base_dir=Path(base_dir), models_dir=Path(models_dir))
        self.engine: Engine = engine_class(self.card.engine)(self.card, source=source, device=device)
        with contextlib.suppress(Exception):  # a missing library: the load says which
            type(self.engine).import_libraries(self.engine.options)
        heap.freeze_imports()  # the libraries, before any weight: the freeze after the load skips them
        self.engine.load()
        heap.freeze()  # this process's loaded heap, skipped by later full collections (see mmserve.heap)
        if gateway is not None:
            self.holders.hold(gateway, lease_s, time.monotonic())
            threading.Thread(target=self._end_when_unheld, name="mmserve-lease", daemon=True).start()

    def _end_when_unheld(self) -> None:
        import ray

        while not self.holders.unheld(time.monotonic()):
            time.sleep(WATCH_S)
        log.info("replica of '%s' is held by no gateway: ending", self.card.id)
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def attach(self, gateway: str, lease_s: float) -> dict[str, Any]:
        """Take ``gateway``'s lease on this replica; what :meth:`info` says."""
        self.holders.hold(gateway, lease_s, time.monotonic())
        return self.info()

    def release(self, gateway: str) -> None:
        """``gateway`` unloaded this replica: the replica ends once no other gateway holds it."""
        self.holders.release(gateway)

    def lease_state(self) -> dict[str, Any]:
        """This actor, the gateways holding it and its running calls (for operators and tests)."""
        import ray

        return {
            "actor_id": ray.get_runtime_context().get_actor_id(),
            "holders": self.holders.gateways(time.monotonic()),
            "running": self.holders.running,
        }

    def info(self) -> dict[str, Any]:
        """Where this replica runs and what the gateway asks engines directly (sizes, voices, memory)."""
        e = self.engine
        return {
            "node_id": self.node_id(),
            "memory_bytes": e.memory_bytes(),
            "context_length": e.context_length() if isinstance(e, ChatEngine) else None,
            "image_input_size": e.image_input_size() if isinstance(e, ChatEngine | EmbeddingEngine) else None,
            "dimensions": e.dimensions() if isinstance(e, EmbeddingEngine) else None,
            "voices": e.voices() if isinstance(e, SpeechEngine) else None,
        }

    def node_id(self) -> str:
        """The Ray node this actor runs on (a worker process says "local": see runtime/worker.py)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def batch_size(self) -> int | None:
        """Generations in the engine's running batch (None: the engine does not batch)."""
        return self.engine.batch_size()

    def ping(self, gateway: str | None = None, lease_s: float = 0.0) -> bool:
        """Alive; with ``gateway``, that gateway's lease is renewed for ``lease_s``."""
        if gateway is not None:
            self.holders.hold(gateway, lease_s, time.monotonic())
        return True

    # The task methods the gateway calls (runtime/remote.py): actor generators (Ray tells them by
    # their kind) of their items in batches; a cancelled or closed one closes its batches at once.
    # chat(ChatInput), image(ImageGenInput), speech(SpeechInput), transcribe(TranscriptionInput),
    # embed(EmbeddingInput), video(VideoGenInput): each batches what its `_<name>` yields.

    chat = _batched_method("_chat")
    image = _batched_method("_image")
    speech = _batched_method("_speech")
    transcribe = _batched_method("_transcribe")
    embed = _batched_method("_embed")
    video = _batched_method("_video")

    async def _chat(self, request: ChatInput) -> AsyncIterator[ChatDelta]:
        assert isinstance(self.engine, ChatEngine)
        gen = self.engine.generate(request)
        try:
            async for delta in gen:
                yield delta
        finally:
            await gen.aclose()

    async def _image(self, request: ImageGenInput) -> AsyncIterator[Any]:
        """Progress fractions, ``("preview", index, images)`` partial images (streaming), then the output."""
        assert isinstance(self.engine, ImageEngine)
        async for item in _with_progress(lambda cb, show: self.engine.generate(request, cb, show)):
            yield item

    async def _speech(self, request: SpeechInput) -> AsyncIterator[AudioChunk]:
        assert isinstance(self.engine, SpeechEngine)
        gen = self.engine.synthesize(request)
        try:
            async for chunk in gen:
                yield chunk
        finally:
            if hasattr(gen, "aclose"):
                await gen.aclose()

    async def _transcribe(self, request: TranscriptionInput) -> AsyncIterator[Any]:
        """Segments as they are decoded, then the transcript."""
        assert isinstance(self.engine, TranscriptionEngine)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        engine = self.engine

        def on_segment(segment: Any) -> None:  # possibly from the engine's worker thread
            loop.call_soon_threadsafe(queue.put_nowait, ("segment", segment))

        task = asyncio.ensure_future(engine.transcribe(request, on_segment))
        task.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, ("done", None)))
        try:
            while (item := await queue.get())[0] != "done":
                yield item
            yield ("transcript", task.result())
        finally:
            task.cancel()

    async def _embed(self, request: EmbeddingInput) -> AsyncIterator[EmbeddingOutput]:
        """One item: the vectors (a generator, so that errors and retries go the way of every other call)."""
        assert isinstance(self.engine, EmbeddingEngine)
        yield await self.engine.embed(request)

    async def _video(self, request: VideoGenInput) -> AsyncIterator[Any]:
        assert isinstance(self.engine, VideoEngine)
        async for item in _with_progress(lambda cb, _: self.engine.generate(request, cb)):
            yield item


async def _with_progress(start: Any) -> AsyncIterator[Any]:
    """Run ``start(progress_callback, preview_callback)``; yield each progress fraction and
    ``("preview", index, images)``, then the result."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def progress(fraction: float) -> None:  # called from the engine's worker thread
        if stop.is_set():
            raise Cancelled()
        loop.call_soon_threadsafe(queue.put_nowait, fraction)

    def preview(index: int, images: list[Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("preview", index, images))

    task = asyncio.ensure_future(start(progress, preview))
    try:
        while not task.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        yield task.result()
    finally:
        stop.set()  # the gateway left (or cancelled): the engine stops at its next step
        if not task.done():
            await asyncio.wait({task}, timeout=60)


async def batched(
    items: AsyncIterator[Any], window: float = COALESCE_S, *, hold_first: bool = False
) -> AsyncGenerator[Batch, None]:
    """``items`` as batches: whatever is ready, at most one batch per ``window`` (the first one at
    once, or with ``hold_first`` a window after the start); the last batch says that the stream
    ended, so that the gateway need not wait for the task's end.

    ``items`` runs in its own task. An error it raises comes after the items before it. When
    the gateway cancels this generator (its client left), that task is cancelled: the engine
    stops as it did when it was iterated here.
    """
    loop = asyncio.get_running_loop()
    ready: list[Any] = []
    arrived = asyncio.Event()  # set when an item is put or the stream ended
    ended = asyncio.Event()
    failure: list[Exception] = []

    async def pump() -> None:
        try:
            async for item in items:
                ready.append(item)
                arrived.set()
        except Exception as e:  # sent after the items before it
            failure.append(e)
        finally:
            ended.set()
            arrived.set()

    task = asyncio.ensure_future(pump())
    sent_at = loop.time() if hold_first else -math.inf
    try:
        while True:
            await arrived.wait()
            hold = sent_at + window - loop.time()
            if hold > 0 and not ended.is_set():
                with contextlib.suppress(TimeoutError):  # items that come meanwhile join the batch
                    await asyncio.wait_for(ended.wait(), hold)
            arrived.clear()
            batch, ready[:] = ready[:], []
            if failure:
                if batch:
                    yield batch, False
                raise failure[0]
            if ended.is_set():
                yield batch, True
                return
            yield batch, False
            sent_at = loop.time()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
