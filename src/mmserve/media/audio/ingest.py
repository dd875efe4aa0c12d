"""The one entry point endpoints use for uploaded audio: bytes -> bounded 16 kHz mono PCM.

Decoding runs in worker threads (never on the event loop), at most
``audio.max_decode_concurrency`` at once; each decode stops itself at
``audio.decode_timeout_s`` (a thread cannot be killed, so the deadline is checked inside
the decode loop rather than only awaited here).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from mmserve.media.audio.decode import TARGET_RATE, AudioLimits, DecodedAudio, decode_audio
from mmserve.settings import Settings


class CardAudioLimits(Protocol):
    """What the media layer reads of a model card's limits (``cards.Limits`` has it)."""

    @property
    def max_audio_seconds(self) -> float: ...


class AudioIngestor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sem = asyncio.Semaphore(settings.audio.max_decode_concurrency)

    def limits_for(self, card: CardAudioLimits) -> AudioLimits:
        audio = self.settings.audio
        return AudioLimits(
            max_bytes=audio.max_upload_bytes,
            max_seconds=min(card.max_audio_seconds, audio.max_audio_seconds),
            timeout_s=audio.decode_timeout_s,
        )

    async def decode(self, data: bytes, card: CardAudioLimits, *, param: str = "file") -> DecodedAudio:
        limits = self.limits_for(card)
        if not data or len(data) > limits.max_bytes:
            decode_audio(data, limits, param=param)  # raises the proper 400/413 without a thread
        async with self._sem:
            return await asyncio.to_thread(decode_audio, data, limits, param=param, rate=TARGET_RATE)
