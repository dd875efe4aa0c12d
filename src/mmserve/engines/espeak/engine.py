"""Text-to-speech with espeak-ng: real, offline, CPU-only, hundreds of times faster than real time.

Voices: OpenAI's voice names map to espeak-ng voices (see :data:`ESPEAK_VOICES`; a card may
override the map with ``options.voice_map``), and espeak-ng's own names work as well: a
language or voice (``en-us``, ``fr``, ``gmw/en-US``, ``English (America)``), optionally with a
variant (``en-us+klatt``, ``de+f3``). Most OpenAI voices use espeak-ng's Klatt variants,
which speech recognisers (pocketsphinx included) understand far better than the default.

``speed`` becomes espeak-ng's words-per-minute rate (175 at 1.0); below the library's
minimum of 80 wpm the rest of the slow-down is done with FFmpeg's ``atempo``.
``instructions`` cannot steer this engine and are ignored.
"""

from __future__ import annotations

import asyncio
import threading
import unicodedata
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import Field

from mmserve.engines.base import EngineOptions, SpeechEngine
from mmserve.engines.common.voices import OPENAI_VOICES
from mmserve.engines.types import AudioChunk, SpeechInput
from mmserve.errors import EngineError, InvalidRequestError

# OpenAI voice -> espeak-ng voice (+variant).
ESPEAK_VOICES: dict[str, str] = {
    "alloy": "en-us+klatt",
    "ash": "en-us+klatt2",
    "ballad": "en-gb-x-rp+klatt4",
    "coral": "en-us+klatt3",
    "echo": "en-us+m3",
    "fable": "en+klatt",  # espeak-ng's "en" is British English
    "nova": "en-us+f3",
    "onyx": "en-us+m7",
    "sage": "en-us+klatt4",
    "shimmer": "en-us+f4",
    "verse": "en-us+m1",
    "marin": "en-us+f2",
    "cedar": "en-us+m2",
}


class EspeakOptions(EngineOptions):
    rate_wpm: int = Field(default=175, ge=80, le=450, description="Words per minute at speed 1.0.")
    voice_map: dict[str, str] = Field(default_factory=dict, description="Extra or overriding voice -> espeak voice.")
    default_voice: str | None = Field(default=None, description="Voice used for names not in the map (None: 400).")


class EspeakEngine(SpeechEngine):
    Options = EspeakOptions
    options: EspeakOptions

    _lib: Any = None
    _pool: ThreadPoolExecutor | None = None

    def load(self) -> None:
        from mmserve.engines.espeak.lib import library

        self._lib = library()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"espeak-{self.card.id}")
        self._map = {k.lower(): v for k, v in {**ESPEAK_VOICES, **self.options.voice_map}.items()}
        self._names: dict[str, str] = {}
        for v in self._lib.voices:  # exact names first, then languages ("fr" is the voice fr, not fr-be)
            for key in (v.short, v.identifier.lower(), v.name.lower()):
                self._names.setdefault(key, v.short)
        for v in self._lib.voices:
            for key in v.languages:
                self._names.setdefault(key, v.short)
        self._variants = {v.lower() for v in self._lib.variants}

    def unload(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def voices(self) -> list[str]:
        if self.card.capabilities.voices:
            return list(self.card.capabilities.voices)
        return sorted(self._map) + sorted({v.short for v in self._lib.voices})

    def resolve_voice(self, voice: str) -> str:
        """The espeak-ng voice spec for a requested name; 400 naming ``voice`` if there is none."""
        key = voice.strip().lower()
        allowed = [v.lower() for v in self.card.capabilities.voices]
        if allowed and key not in allowed:
            raise InvalidRequestError(
                f"The model '{self.card.id}' has no voice '{voice}'. "
                f"Voices: {', '.join(self.card.capabilities.voices)}.",
                param="voice",
                code="invalid_voice",
            )
        if key in self._map:
            return self._map[key]
        base, _, variant = key.partition("+")
        if base in self._names and (not variant or variant in self._variants):
            return self._names[base] + (f"+{variant}" if variant else "")
        if self.options.default_voice:
            return self.resolve_voice(self.options.default_voice)
        raise InvalidRequestError(
            f"Unknown voice '{voice}'. Use an OpenAI voice ({', '.join(OPENAI_VOICES)}) or an espeak-ng voice "
            "such as 'en-us', 'en-gb', 'fr', 'de', optionally with a variant like 'en-us+klatt' or 'de+f3'.",
            param="voice",
            code="invalid_voice",
        )

    async def synthesize(self, request: SpeechInput) -> AsyncIterator[AudioChunk]:
        if self._lib is None or self._pool is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        voice = self.resolve_voice(request.voice)
        text = _clean(request.text)
        rate = round(self.options.rate_wpm * request.speed)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        sample_rate = self._lib.sample_rate
        future = loop.run_in_executor(self._pool, self._run, text, voice, rate, loop, queue, cancelled)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise EngineError(f"espeak-ng failed for '{self.card.id}'") from item
                yield AudioChunk(item, sample_rate)
            await future
        finally:
            cancelled.set()  # the consumer went away: the callback stops the synthesis

    def _run(
        self,
        text: str,
        voice: str,
        rate: int,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
        cancelled: threading.Event,
    ) -> None:
        from mmserve.engines.common.torch_utils import loop_sender
        from mmserve.engines.espeak.lib import MIN_RATE
        from mmserve.media.audio.dsp import Tempo

        send = loop_sender(loop, queue)

        tempo = Tempo(self._lib.sample_rate, rate / MIN_RATE) if rate < MIN_RATE else None

        def sink(pcm: Any) -> bool:
            samples = pcm.astype("float32") / 32768.0
            if tempo is not None:
                samples = tempo.push(samples)
            if samples.size:
                send(samples)
            return not cancelled.is_set()

        try:
            self._lib.synthesize(text, voice, max(rate, MIN_RATE), sink)
            if tempo is not None:
                send(tempo.flush())
            send(None)
        except BaseException as e:
            send(e)


def _clean(text: str) -> str:
    """Drop control characters (a NUL would end the C string early); keep line breaks as spaces."""
    return "".join(" " if c in "\r\n\t" else c for c in text if c in "\r\n\t" or unicodedata.category(c)[0] != "C")
