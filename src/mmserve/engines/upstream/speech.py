"""Text-to-speech on a third-party provider (``POST /audio/speech``), streamed as it is spoken.

The provider is asked for raw PCM (16-bit little-endian mono at ``pcm_sample_rate``, 24 kHz as
OpenAI sends it) so that mmserve encodes every response format itself, exactly as for local
voices, and meters the seconds it really received. With ``stream_format: sse`` the provider
streams ``speech.audio.delta`` events instead and its ``speech.audio.done`` usage (tokens, as
gpt-4o-mini-tts bills) is metered too.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import AsyncGenerator
from typing import Any, Literal

import numpy as np
import pybase64
from pydantic import Field

from mmserve.engines.base import SpeechEngine
from mmserve.engines.types import AudioChunk, SpeechInput
from mmserve.engines.upstream.base import UpstreamEngine
from mmserve.engines.upstream.options import UpstreamOptions
from mmserve.errors import InvalidRequestError, MMServeError


class UpstreamSpeechOptions(UpstreamOptions):
    stream_format: Literal["audio", "sse"] = Field(
        default="audio", description="audio: raw PCM bytes; sse: speech.audio.delta events with token usage."
    )
    pcm_sample_rate: int = Field(default=24000, ge=8000, le=192000, description="The rate of the provider's PCM.")


class UpstreamSpeechEngine(UpstreamEngine, SpeechEngine):
    Options = UpstreamSpeechOptions
    options: UpstreamSpeechOptions

    async def synthesize(self, request: SpeechInput) -> AsyncGenerator[AudioChunk, None]:
        voices = self.voices()
        if voices and request.voice not in voices:
            raise InvalidRequestError(
                f"The model '{self.card.id}' has no voice '{request.voice[:64]}'. Voices: {', '.join(voices)}.",
                param="voice",
                code="unsupported_voice",
            )
        opts = self.options
        body: dict[str, Any] = {
            "model": self.remote_model,
            "input": request.text,
            "voice": request.voice,
            "response_format": "pcm",
        }
        if request.speed != 1.0:
            body["speed"] = request.speed
        if request.instructions:
            body["instructions"] = request.instructions
        if opts.stream_format == "sse":
            body["stream_format"] = "sse"
        upstream = self.upstream
        rate = opts.pcm_sample_rate
        async with upstream.stream("POST", "/audio/speech", json=body) as resp:
            pcm = _Pcm()
            try:
                if opts.stream_format == "audio":
                    async for data in resp.aiter_bytes():
                        samples = pcm.push(data)
                        if samples.size:
                            yield AudioChunk(samples, rate)
                    return
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:].strip() or "{}")
                    kind = event.get("type")
                    if kind == "speech.audio.delta":
                        samples = pcm.push(pybase64.b64decode(event.get("audio") or "", validate=True))
                        if samples.size:
                            yield AudioChunk(samples, rate)
                    elif kind == "speech.audio.done":
                        usage = event.get("usage") or {}
                        yield AudioChunk(
                            np.zeros(0, np.float32),
                            rate,
                            input_tokens=int(usage.get("input_tokens") or 0),
                            output_tokens=int(usage.get("output_tokens") or 0),
                        )
                    elif kind == "error" or "error" in event:
                        raise upstream.bad_response(f"an error in its stream: {upstream.clip(str(event))}")
            except MMServeError:
                raise
            except (ValueError, TypeError, AttributeError, binascii.Error) as e:
                raise upstream.bad_response("an unreadable audio stream") from e
            except Exception as e:  # the connection dropped or stalled past timeout_s
                raise upstream.mid_stream_error(e) from e


class _Pcm:
    """16-bit little-endian PCM bytes, as they arrive (a sample may be split across reads), as float32."""

    def __init__(self) -> None:
        self.carry = b""

    def push(self, data: bytes) -> np.ndarray:
        data = self.carry + data
        usable = len(data) - len(data) % 2
        self.carry = data[usable:]
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
