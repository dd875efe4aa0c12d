"""``stream: true`` for generations and edits: ``partial_images`` previews, then the finished images, as SSE.

Events (OpenAI's, ``image_generation.*`` for generations and ``image_edit.*`` for edits):
``{prefix}.partial_image`` ``{type, b64_json, partial_image_index, background, created_at,
output_format, quality, size}`` for each preview the engine decodes from its intermediate
latents (up to ``partial_images``, 0-3; fewer when the run has fewer steps), then one
``{prefix}.completed`` ``{..., usage}`` per image. With ``n > 1`` every event also says which
image it shows (``image_index``, an mmserve extension). Images are always ``b64_json`` here.

The run is started, and its first event awaited, before the response begins: failures so far
are HTTP errors (and a routed request falls back to the next model); a later failure is an
``{"error": ...}`` event. A client that leaves stops the run at its next step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pybase64
from PIL.Image import Image

from mmserve.api.streaming import Stream, error_event
from mmserve.cards import ModelCard
from mmserve.engines.base import ImageEngine
from mmserve.engines.types import ImageGenInput, ImageGenOutput
from mmserve.media.image.encode import OutputFormat, encode_images

log = logging.getLogger("mmserve.images")


@dataclass
class StreamShape:
    """What every event of one request repeats."""

    prefix: str  # image_generation | image_edit
    fmt: OutputFormat
    compression: int | None
    size: str
    quality: str = "auto"  # the level asked for (partial images); completed events say the level used
    background: str = "opaque"


@dataclass
class ImageRun:
    """A started streaming generation: the engine task, its events so far, and the slot it holds."""

    card: ModelCard
    shape: StreamShape
    task: asyncio.Task[ImageGenOutput]
    events: asyncio.Queue[tuple[int, list[Image]] | None]  # previews; None once the task is done
    stack: AsyncExitStack
    first: tuple[int, list[Image]] | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    async def release(self) -> None:
        if not self.task.done():
            self.task.cancel()  # the engine stops at its next step
        await asyncio.gather(self.task, return_exceptions=True)
        await self.stack.aclose()


async def start_run(card: ModelCard, engine_slot: Any, inp: ImageGenInput, shape: StreamShape) -> ImageRun:
    """Acquire a slot (``engine_slot``: the deployment's ``acquire()``), start the run, await its first event."""
    stack = AsyncExitStack()
    try:
        engine = await stack.enter_async_context(engine_slot)
    except BaseException:
        await stack.aclose()
        raise
    assert isinstance(engine, ImageEngine)
    events: asyncio.Queue[tuple[int, list[Image]] | None] = asyncio.Queue()
    task = asyncio.create_task(engine.generate(inp, preview=lambda i, images: events.put_nowait((i, images))))
    task.add_done_callback(lambda _: events.put_nowait(None))
    run = ImageRun(card, shape, task, events, stack)
    try:
        run.first = await events.get()
        if run.first is None:
            task.result()  # a failure before any event: an HTTP error, and routing may fall back
    except BaseException:
        await run.release()
        raise
    return run


def sse(run: ImageRun, finish: Callable[[ImageGenOutput], Awaitable[dict[str, Any]]]) -> Stream:
    """The run's events as a :class:`Stream`; ``finish`` meters the result and returns its usage."""
    return Stream(_events(run, finish), run.release)


async def _events(
    run: ImageRun, finish: Callable[[ImageGenOutput], Awaitable[dict[str, Any]]]
) -> AsyncGenerator[dict[str, str], None]:
    shape = run.shape
    try:
        item = run.first
        while item is not None:
            index, images = item
            n = len(images)
            for i, blob in enumerate(await encode_images(images, shape.fmt, compression=shape.compression)):
                extra = {"partial_image_index": index, **({"image_index": i} if n > 1 else {})}
                yield _event(run, "partial_image", blob, shape.quality, extra)
            item = await run.events.get()
        result = run.task.result()
        usage = await finish(result)
        n = result.count
        quality = result.quality or "auto"
        blobs = (  # a provider's files, already checked to be this format, pass as they are
            result.encoded
            if result.encoded is not None
            else await encode_images(result.images, shape.fmt, compression=shape.compression)
        )
        for i, blob in enumerate(blobs):
            yield _event(run, "completed", blob, quality, {"usage": usage, **({"image_index": i} if n > 1 else {})})
    except Exception as e:
        yield {"data": error_event(e, log, f"image stream for '{run.card.id}'")}


def _event(run: ImageRun, kind: str, blob: bytes, quality: str, extra: dict[str, Any]) -> dict[str, str]:
    shape = run.shape
    kind = f"{shape.prefix}.{kind}"
    body = {
        "type": kind,
        "b64_json": pybase64.b64encode(blob).decode("ascii"),
        "background": shape.background,
        "created_at": run.created,
        "output_format": shape.fmt,
        "quality": quality,
        "size": shape.size,
        **extra,
    }
    return {"event": kind, "data": json.dumps(body)}
