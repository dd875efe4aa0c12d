"""Transcription and translation: check the form against the card, decode the upload, run the engine, render.

Streaming (``stream=true``) sends a ``transcript.text.delta`` event per segment as the engine
decodes it and a final ``transcript.text.done`` with the text and usage. The engine is
started and its first event awaited before the response begins, so failures up to then
are still HTTP errors; a failure later is an ``{"error": ...}`` event (the SDK raises it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal

from mmserve.api.audio_usage import AudioTask, AudioUsage, record_usage
from mmserve.api.state import AppState
from mmserve.api.streaming import Stream, error_event
from mmserve.api.transcriptions import transcripts
from mmserve.api.transcriptions.protocol import TranscriptionForm, TranscriptionUpload
from mmserve.cards import ModelCard
from mmserve.control.routing import Needs
from mmserve.engines.base import TranscriptionEngine
from mmserve.engines.types import Segment, Transcript, TranscriptionInput
from mmserve.errors import InvalidRequestError, ModelCapabilityError
from mmserve.media.audio.ingest import AudioIngestor

log = logging.getLogger("mmserve.transcription")
Task = Literal["transcribe", "translate"]


@dataclass
class _Heard:
    """How far a streamed transcription got: what is metered if the client leaves before its end."""

    card: ModelCard
    task: Task
    seconds: float  # end of the last segment the engine made
    recorded: bool = False


def _usage_task(task: Task) -> AudioTask:
    return "translation" if task == "translate" else "transcription"


@dataclass
class Rendered:
    body: str | dict[str, Any]
    content_type: str


class TranscriptionService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        if state.audio is None:
            state.audio = AudioIngestor(state.settings)
        self.audio: AudioIngestor = state.audio

    def _record(self, card: ModelCard, task: Task, transcript: Transcript) -> AudioUsage:
        seconds = transcript.billed_seconds if transcript.billed_seconds is not None else transcript.duration
        usage = AudioUsage(
            card.id,
            _usage_task(task),
            seconds,
            input_tokens=transcript.input_tokens,
            output_tokens=transcript.output_tokens,
        )
        return record_usage(self.state, card, usage)

    async def prepare(self, upload: TranscriptionUpload, task: Task, card: ModelCard) -> TranscriptionInput:
        form = upload.form
        _check_form(form, card, task)
        decoded = await self.audio.decode(upload.data, card.limits, param="file")
        inp = TranscriptionInput(
            audio=decoded.samples,
            sample_rate=decoded.sample_rate,
            language=form.language,
            prompt=form.prompt,
            temperature=form.temperature,
            task=task,
            word_timestamps="word" in form.timestamp_granularities,
        )
        return inp

    async def complete(self, upload: TranscriptionUpload, task: Task) -> Rendered:
        card, transcript = await self.state.router.serve(
            upload.form.model,
            Needs("transcription", translation=task == "translate"),
            lambda card: self._transcribe(upload, task, card),
        )
        usage = self._record(card, task, transcript)
        form = upload.form
        fmt = form.response_format
        if fmt == "json":
            return Rendered(transcripts.render_json(transcript, usage), transcripts.CONTENT_TYPES[fmt])
        if fmt == "verbose_json":
            grains = form.timestamp_granularities
            body = await asyncio.to_thread(  # the language's name: transformers' table, slow to import once
                transcripts.render_verbose,
                transcript,
                usage,
                task="translate" if task == "translate" else "transcribe",
                segments=not grains or "segment" in grains,
                words="word" in grains,
            )
            return Rendered(body, transcripts.CONTENT_TYPES[fmt])
        render = {"text": transcripts.render_text, "srt": transcripts.render_srt, "vtt": transcripts.render_vtt}[fmt]
        return Rendered(render(transcript), transcripts.CONTENT_TYPES[fmt])

    async def _transcribe(
        self, upload: TranscriptionUpload, task: Task, card: ModelCard
    ) -> tuple[ModelCard, Transcript]:
        inp = await self.prepare(upload, task, card)
        async with self.state.runtime.deployment(card).acquire() as engine:
            assert isinstance(engine, TranscriptionEngine)
            return card, await engine.transcribe(inp)

    async def stream(self, upload: TranscriptionUpload, task: Task) -> Stream:
        """Start the transcription on the routed card (falling back along the route until its first event)."""
        return await self.state.router.serve(
            upload.form.model,
            Needs("transcription", translation=task == "translate"),
            lambda card: self._start_stream(upload, task, card),
        )

    async def _start_stream(self, upload: TranscriptionUpload, task: Task, card: ModelCard) -> Stream:
        inp = await self.prepare(upload, task, card)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Segment | Transcript | BaseException] = asyncio.Queue()

        def on_segment(seg: Segment) -> None:  # may run in the engine's worker thread
            loop.call_soon_threadsafe(events.put_nowait, seg)

        async def run() -> None:
            try:
                async with self.state.runtime.deployment(card).acquire() as engine:
                    assert isinstance(engine, TranscriptionEngine)
                    result = await engine.transcribe(inp, on_segment)
                await asyncio.sleep(0)  # segments queued from threads land first
                events.put_nowait(result)
            except BaseException as e:
                events.put_nowait(e)

        job = asyncio.create_task(run())
        first = await events.get()
        if isinstance(first, BaseException):
            raise first
        progress = _Heard(card, task, first.end if isinstance(first, Segment) else first.duration)

        async def release() -> None:  # the client left (maybe before the first event): the audio heard so far
            job.cancel()
            if not progress.recorded:
                progress.recorded = True
                record_usage(self.state, card, AudioUsage(card.id, _usage_task(task), progress.seconds))

        return Stream(self._sse(progress, first, events, job), release)

    async def _sse(
        self,
        progress: _Heard,
        first: Segment | Transcript,
        events: asyncio.Queue[Segment | Transcript | BaseException],
        job: asyncio.Task[None],
    ) -> AsyncGenerator[str, None]:
        card, task = progress.card, progress.task
        sent = 0
        item: Segment | Transcript | BaseException = first
        try:
            while True:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Transcript):
                    progress.recorded = True
                    usage = self._record(card, task, item)
                    yield json.dumps(
                        {"type": "transcript.text.done", "text": item.text, "usage": usage.api()}, ensure_ascii=False
                    )
                    return
                delta = item.text if sent == 0 else " " + item.text
                sent += 1
                progress.seconds = max(progress.seconds, item.end)
                yield json.dumps({"type": "transcript.text.delta", "delta": delta}, ensure_ascii=False)
                item = await events.get()
        except Exception as e:
            yield error_event(e, log, f"transcription stream for '{card.id}'")
        finally:
            job.cancel()


def _check_form(form: TranscriptionForm, card: ModelCard, task: Task) -> None:
    if task == "translate" and not card.capabilities.translation:
        raise ModelCapabilityError(
            f"The model '{card.id}' does not translate (capabilities.translation is false). "
            "Use /v1/audio/transcriptions, or a model that translates.",
            param="model",
        )
    langs = [lang.lower() for lang in card.capabilities.languages]
    if form.language and langs and form.language.lower().split("-")[0] not in langs:
        raise InvalidRequestError(
            f"The model '{card.id}' does not recognise language '{form.language}'. Languages: {', '.join(langs)}.",
            param="language",
            code="unsupported_language",
        )
    if form.timestamp_granularities and form.response_format != "verbose_json":
        raise InvalidRequestError(
            "timestamp_granularities needs response_format 'verbose_json'.",
            param="timestamp_granularities",
        )
    if form.stream and form.response_format not in ("json", "text"):
        raise InvalidRequestError(
            f"Streaming sends text events; response_format '{form.response_format}' cannot be streamed. "
            "Use 'json' or 'text' with stream=true, or stream=false.",
            param="response_format",
        )
