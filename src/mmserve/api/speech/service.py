"""Text-to-speech: validate against the card, run the engine, encode and stream the audio.

The engine is started and its first chunk awaited before any response is sent, so every
problem with the request (unknown voice, text the model cannot speak, ...) is still an HTTP
4xx. After that the audio goes out as it is produced, in one of three shapes: raw audio
bytes (chunked), SSE ``speech.audio.delta`` / ``speech.audio.done`` events, or, for clients
asking for JSON (DigitalOcean's dialect), one ``{"data": [{"b64_json"}]}`` envelope.
Encoding runs in worker threads, never on the event loop (but raw PCM's: see ``INLINE_SAMPLES``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pybase64

from mmserve.api.audio_usage import AudioUsage, record_usage
from mmserve.api.errors import log_failure
from mmserve.api.speech.protocol import SpeechRequest
from mmserve.api.state import AppState
from mmserve.api.streaming import Stream, error_event
from mmserve.cards import ModelCard
from mmserve.control.routing import Needs
from mmserve.engines.base import SpeechEngine
from mmserve.engines.types import AudioChunk, SpeechInput
from mmserve.errors import InvalidRequestError
from mmserve.media.audio.encode import AudioEncoder

# Raw PCM is a numpy conversion (float to s16, after resampling when the engine's rate is not
# 24 kHz): for a chunk up to this many samples it takes well under a millisecond, less than the
# hop to a worker thread and back (py-spy, 24 kHz PCM streamed from an
# upstream card: a third of the loop's time per request was that hop)
INLINE_SAMPLES = 48_000
DEFAULT_SPEECH_CHARS = 4096  # OpenAI's limit, for cards that set no limits.max_input_chars
log = logging.getLogger("mmserve.speech")


@dataclass
class SpeechStream:
    card: ModelCard
    fmt: str
    chars: int
    first: AudioChunk | None
    rest: AsyncIterator[AudioChunk]
    stack: AsyncExitStack
    produced: float = 0.0  # seconds of audio the engine has made so far
    recorded: bool = False
    input_tokens: int = 0  # what the model reported billing (a provider's usage), so far
    output_tokens: int = 0

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        if self.first is not None:
            yield self.first
        async for chunk in self.rest:
            self.produced += _seconds(chunk)
            self.input_tokens += chunk.input_tokens
            self.output_tokens += chunk.output_tokens
            yield chunk

    async def encoded(self, enc: AudioEncoder) -> AsyncIterator[bytes]:
        """The audio as ``enc`` encodes it (in worker threads), in the pieces it has ready."""
        raw = enc.format == "pcm"
        async for chunk in self.chunks():
            if raw and len(chunk.samples) <= INLINE_SAMPLES:
                data = enc.push(chunk.samples, chunk.sample_rate)
            else:
                data = await asyncio.to_thread(enc.push, chunk.samples, chunk.sample_rate)
            if data:
                yield data
        tail = enc.finish() if raw else await asyncio.to_thread(enc.finish)
        if tail:
            yield tail


class SpeechService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def start(self, req: SpeechRequest) -> SpeechStream:
        """Start the synthesis on the routed card (falling back along the route), its first chunk made."""
        return await self.state.router.serve(req.model, Needs("speech"), lambda card: self._start(req, card))

    async def _start(self, req: SpeechRequest, card: ModelCard) -> SpeechStream:
        limit = min(card.limits.max_input_chars or DEFAULT_SPEECH_CHARS, self.state.settings.audio.max_speech_chars)
        if not any(c.isprintable() and not c.isspace() for c in req.input):  # "", spaces, control chars
            raise InvalidRequestError(
                "'input' has nothing to speak (only spaces or control characters); send the text to speak.",
                param="input",
                code="nothing_to_say",
            )
        if len(req.input) > limit:
            raise InvalidRequestError(
                f"'input' is {len(req.input)} characters; the model '{card.id}' speaks at most {limit} per request. "
                "Split the text into several requests.",
                param="input",
                code="input_too_long",
            )
        if not req.voice.strip():
            raise InvalidRequestError("'voice' is empty; name a voice such as 'alloy'.", param="voice")
        dep = self.state.runtime.deployment(card)
        stack = AsyncExitStack()
        try:
            engine = await stack.enter_async_context(dep.acquire())
            assert isinstance(engine, SpeechEngine)
            gen = engine.synthesize(
                SpeechInput(text=req.input, voice=req.voice, speed=req.speed, instructions=req.instructions)
            )
            if isinstance(gen, AsyncGenerator):
                stack.push_async_callback(gen.aclose)
            first = await anext(gen, None)  # the voice and text are checked: errors so far are 4xx/5xx
        except BaseException:
            await stack.aclose()
            raise
        produced = _seconds(first) if first is not None else 0.0
        s = SpeechStream(card, req.response_format, len(req.input), first, gen, stack, produced)
        if first is not None:
            s.input_tokens, s.output_tokens = first.input_tokens, first.output_tokens
        return s

    def stream(self, s: SpeechStream, chunks: AsyncGenerator[Any, None]) -> Stream:
        """``chunks`` (from :meth:`audio` or :meth:`sse`) as a response stream, released even if never read."""

        async def release() -> None:
            self._record(s)
            await s.stack.aclose()

        return Stream(chunks, release)

    # ------------------------------------------------------------------ response shapes

    async def audio(self, s: SpeechStream) -> AsyncGenerator[bytes, None]:
        """Raw audio bytes as they are encoded. A failure mid-stream aborts the connection (logged)."""
        enc = AudioEncoder(s.fmt, streaming=True)
        async with s.stack:
            try:
                async for data in s.encoded(enc):
                    yield data
            except Exception as e:
                log_failure(log, e, f"speech stream for '{s.card.id}'")
                raise
            finally:  # also when the client leaves early: the audio made so far
                self._record(s)

    async def sse(self, s: SpeechStream) -> AsyncGenerator[str, None]:
        """``speech.audio.delta`` events with base64 audio, then ``speech.audio.done`` with usage."""
        enc = AudioEncoder(s.fmt, streaming=True)
        async with s.stack:
            try:
                async for data in s.encoded(enc):
                    yield _delta(data)
                usage = self._record(s)
                yield json.dumps({"type": "speech.audio.done", "usage": usage.api()})
            except Exception as e:
                yield error_event(e, log, f"speech stream for '{s.card.id}'")
            finally:
                self._record(s)

    async def envelope(self, s: SpeechStream) -> dict[str, Any]:
        """The whole clip, encoded with exact headers, base64 in ``{"data": [{"b64_json"}]}``."""
        enc = AudioEncoder(s.fmt, streaming=False)
        try:
            async with s.stack:
                parts = [data async for data in s.encoded(enc)]
        finally:  # also when cancelled midway: the audio made so far
            usage = self._record(s)
        return {
            "data": [{"b64_json": pybase64.b64encode(b"".join(parts)).decode()}],
            "model": s.card.id,
            "response_format": s.fmt,
            "content_type": enc.content_type,
            "usage": usage.api(),
        }

    def _record(self, s: SpeechStream) -> AudioUsage:
        """The request's usage: the audio made so far, recorded the first time only."""
        usage = AudioUsage(s.card.id, "speech", s.produced, s.chars, s.input_tokens, s.output_tokens)
        if not s.recorded:
            s.recorded = True
            usage = record_usage(self.state, s.card, usage)
        return usage


def _seconds(chunk: AudioChunk) -> float:
    return len(chunk.samples) / chunk.sample_rate


def _delta(data: bytes) -> str:
    return json.dumps({"type": "speech.audio.delta", "audio": pybase64.b64encode(data).decode()})
