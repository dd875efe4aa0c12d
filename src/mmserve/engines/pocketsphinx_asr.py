"""Transcription with CMU PocketSphinx 5: real, offline, CPU-only English recognition.

The ``pocketsphinx`` wheel ships a US English acoustic model, language model and dictionary;
a card may point ``options.hmm`` / ``lm`` / ``dict`` (relative to ``source``) at another model.

Audio (16 kHz mono) goes through pocketsphinx's own voice-activity :class:`Endpointer`;
each speech region (at most ``max_utterance_s`` long) is decoded as one utterance with
whole-utterance cepstral normalisation (markedly more accurate than live normalisation on
short clips), and split into segments at pauses of ``segment_pause_s``. Segments are
reported as soon as their region is decoded, so streamed transcripts arrive region by region.
Word times come from the decoder's segmentation (10 ms frames); ``avg_logprob`` is the mean
log posterior of the segment's words. ``prompt`` and ``temperature`` do not apply to this
decoder and are ignored; it cannot translate.
"""

from __future__ import annotations

import asyncio
import math
import queue
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from mmserve.engines.base import EngineOptions, SegmentCallback, TranscriptionEngine
from mmserve.engines.common.transcripts import compression_ratio
from mmserve.engines.registry import require
from mmserve.engines.types import Segment, Transcript, TranscriptionInput, Word
from mmserve.errors import EngineError, InvalidRequestError, ModelCapabilityError

RATE = 16000
FRAME_S = 0.01  # the decoder's frame rate is 100/s
_NON_WORDS = {"<s>", "</s>", "<sil>", "[noise]", "<unk>"}


class PocketsphinxOptions(EngineOptions):
    hmm: str | None = Field(default=None, description="Acoustic model directory (default: the bundled en-us).")
    lm: str | None = Field(default=None, description="Language model file (default: the bundled en-us).")
    dictionary: str | None = Field(default=None, description="Pronunciation dictionary (default: the bundled one).")
    language: str = Field(default="en", description="The language of the model (ISO 639-1).")
    parallel_decoders: int = Field(default=1, ge=1, le=16, description="Decoders (one per concurrent request).")
    vad_window_s: float = Field(default=0.3, gt=0, le=2.0)
    vad_mode: int = Field(default=0, ge=0, le=3, description="Voice activity detection aggressiveness (0-3).")
    max_utterance_s: float = Field(default=30.0, gt=1, le=120)
    segment_pause_s: float = Field(default=0.25, gt=0, description="A pause at least this long starts a segment.")


class PocketsphinxEngine(TranscriptionEngine):
    Options = PocketsphinxOptions
    options: PocketsphinxOptions

    _decoders: queue.Queue[Any] | None = None
    _pool: ThreadPoolExecutor | None = None

    def load(self) -> None:
        require("pocketsphinx", self.card.engine)
        from pocketsphinx import Decoder

        config: dict[str, Any] = {"samprate": RATE, "loglevel": "FATAL"}
        for key, arg in (("hmm", "hmm"), ("lm", "lm"), ("dictionary", "dict")):
            value = getattr(self.options, key)
            if value is not None:
                path = Path(value) if Path(value).is_absolute() or self.source is None else self.source / value
                if not path.exists():
                    raise EngineError(f"Model '{self.card.id}': options.{key} '{path}' does not exist.")
                config[arg] = str(path)
        n = self.options.parallel_decoders
        self._decoders = queue.Queue()
        for _ in range(n):
            self._decoders.put(Decoder(**config))
        self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"sphinx-{self.card.id}")

    def unload(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._decoders = None

    async def transcribe(self, request: TranscriptionInput, on_segment: SegmentCallback | None = None) -> Transcript:
        if self._pool is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        if request.task == "translate":
            raise ModelCapabilityError(f"The model '{self.card.id}' cannot translate.", param="model")
        lang = self.options.language
        if request.language and request.language.lower().split("-")[0] != lang:
            raise InvalidRequestError(
                f"The model '{self.card.id}' recognises only '{lang}'; got language '{request.language}'.",
                param="language",
                code="unsupported_language",
            )
        if request.sample_rate != RATE:
            raise EngineError(f"pocketsphinx needs {RATE} Hz audio, got {request.sample_rate}")
        loop = asyncio.get_running_loop()
        segments = await loop.run_in_executor(self._pool, self._decode, request.audio, on_segment)
        text = " ".join(s.text for s in segments)
        return Transcript(text=text, language=lang, duration=len(request.audio) / RATE, segments=segments)

    # ------------------------------------------------------------------ worker thread

    def _decode(self, audio: Any, on_segment: SegmentCallback | None) -> list[Segment]:
        from pocketsphinx import Endpointer

        assert self._decoders is not None
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        opts = self.options
        ep = Endpointer(window=opts.vad_window_s, vad_mode=opts.vad_mode, sample_rate=RATE)
        fb = ep.frame_bytes
        max_bytes = int(opts.max_utterance_s * RATE) * 2
        decoder = self._decoders.get()
        segments: list[Segment] = []

        def emit(region: list[bytes], start: float) -> None:
            for seg in self._utterance(decoder, b"".join(region), start, len(segments)):
                segments.append(seg)
                if on_segment is not None:
                    on_segment(seg)

        try:
            region: list[bytes] = []
            size, start = 0, 0.0
            full = len(pcm) - len(pcm) % fb
            for i in range(0, full + 1, fb):
                frame = pcm[i : i + fb]
                # the tail goes to end_stream (never empty: the endpointer needs at least one sample)
                speech = ep.end_stream(frame or b"\0\0") if i == full else ep.process(frame)
                if speech is None:
                    continue
                if not region:
                    start = ep.speech_start if size == 0 else start + size / 2 / RATE
                    size = 0
                region.append(speech)
                size += len(speech)
                if not ep.in_speech or size >= max_bytes:
                    emit(region, start)
                    region = []
                    if not ep.in_speech:
                        size = 0
            if region:
                emit(region, start)
        finally:
            self._decoders.put(decoder)
        return segments

    def _utterance(self, decoder: Any, pcm: bytes, offset: float, first_id: int) -> list[Segment]:
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        groups: list[list[tuple[str, float, float, float]]] = [[]]
        for s in decoder.seg():
            word = s.word.split("(")[0]
            start, end = offset + s.start_frame * FRAME_S, offset + (s.end_frame + 1) * FRAME_S
            if word.lower() in _NON_WORDS or word.startswith("++") or word.startswith("["):
                if word == "<sil>" and end - start >= self.options.segment_pause_s and groups[-1]:
                    groups.append([])
                continue
            groups[-1].append((word, start, end, float(s.prob)))
        out: list[Segment] = []
        for words in (g for g in groups if g):
            text = " ".join(w for w, *_ in words)
            out.append(
                Segment(
                    id=first_id + len(out),
                    start=round(words[0][1], 2),
                    end=round(words[-1][2], 2),
                    text=text,
                    avg_logprob=sum(math.log(max(p, 1e-10)) for *_, p in words) / len(words),
                    words=[Word(w, round(s, 2), round(e, 2)) for w, s, e, _ in words],
                    seek=round(offset * 100),
                    compression_ratio=compression_ratio(text),
                )
            )
        return out
