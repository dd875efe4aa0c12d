"""Transcription and translation on a third-party provider (``POST /audio/transcriptions`` / ``translations``).

The provider hears the audio mmserve decoded and bounded (16 kHz mono, sent as a 16-bit WAV it
wrote itself: the client's file never reaches the provider), and answers ``verbose_json`` (segments,
words, language, duration) or, for providers without it, ``json``. Its reported usage (seconds
heard, or tokens) is what mmserve meters.
"""

from __future__ import annotations

import io
import wave
from typing import Any, Literal

import numpy as np
from pydantic import Field

from mmserve.engines.base import SegmentCallback, TranscriptionEngine
from mmserve.engines.types import Segment, Transcript, TranscriptionInput, Word
from mmserve.engines.upstream.base import UpstreamEngine
from mmserve.engines.upstream.options import UpstreamOptions


class UpstreamTranscriptionOptions(UpstreamOptions):
    response_format: Literal["verbose_json", "json"] = Field(
        default="verbose_json", description="Asked of the provider; json for models without segments."
    )


class UpstreamTranscriptionEngine(UpstreamEngine, TranscriptionEngine):
    Options = UpstreamTranscriptionOptions
    options: UpstreamTranscriptionOptions

    async def transcribe(self, request: TranscriptionInput, on_segment: SegmentCallback | None = None) -> Transcript:
        fmt = self.options.response_format
        fields: dict[str, Any] = {"model": self.remote_model, "response_format": fmt}
        if request.language and request.task == "transcribe":
            fields["language"] = request.language
        if request.prompt:
            fields["prompt"] = request.prompt
        if request.temperature:
            fields["temperature"] = str(request.temperature)
        # httpx takes repeated multipart fields as a list in a mapping (a list of pairs would be a body)
        data: dict[str, str | list[str]] = {k: str(v) for k, v in fields.items()}
        if fmt == "verbose_json":
            data["timestamp_granularities[]"] = ["segment", "word"] if request.word_timestamps else ["segment"]
        path = "/audio/translations" if request.task == "translate" else "/audio/transcriptions"
        wav = _wav(request.audio, request.sample_rate)
        answer = await self.upstream.request_json(
            "POST", path, data=data, files={"file": ("audio.wav", wav, "audio/wav")}
        )
        transcript = self._transcript(request, answer)
        if on_segment is not None:
            for seg in transcript.segments:
                on_segment(seg)
        return transcript

    def _transcript(self, request: TranscriptionInput, answer: dict[str, Any]) -> Transcript:
        text = answer.get("text")
        if not isinstance(text, str):
            raise self.upstream.bad_response("a transcription without text")
        heard = len(request.audio) / request.sample_rate
        try:
            duration = float(answer.get("duration") or heard)
            segments = [_segment(i, s) for i, s in enumerate(answer.get("segments") or [])]
            words = [Word(str(w["word"]), float(w["start"]), float(w["end"])) for w in answer.get("words") or []]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self.upstream.bad_response("segments or words in an unexpected shape") from None
        if not segments and text.strip():
            segments = [Segment(id=0, start=0.0, end=duration, text=text.strip())]
        for w in words:  # OpenAI lists words beside the segments; mmserve keeps them in theirs
            seg = next((s for s in segments if s.start <= w.start < s.end), segments[-1] if segments else None)
            if seg is not None:
                seg.words.append(w)
        language = answer.get("language")
        out = Transcript(
            text=text,
            language=language if isinstance(language, str) and language else (request.language or "en"),
            duration=duration,
            segments=segments,
        )
        usage = answer.get("usage")
        if isinstance(usage, dict):
            if usage.get("type") == "duration" and isinstance(usage.get("seconds"), int | float):
                out.billed_seconds = float(usage["seconds"])
            elif usage.get("type") == "tokens":
                out.input_tokens = _int(usage.get("input_tokens"))
                out.output_tokens = _int(usage.get("output_tokens"))
        return out


def _segment(i: int, s: dict[str, Any]) -> Segment:
    return Segment(
        id=int(s.get("id", i)),
        start=float(s["start"]),
        end=float(s["end"]),
        text=str(s.get("text", "")).strip(),
        tokens=[int(t) for t in s.get("tokens") or []],
        avg_logprob=float(s.get("avg_logprob") or 0.0),
        no_speech_prob=float(s.get("no_speech_prob") or 0.0),
        seek=int(s.get("seek") or 0),
        temperature=float(s.get("temperature") or 0.0),
        compression_ratio=float(s.get("compression_ratio") or 0.0),
    )


def _wav(samples: Any, rate: int) -> bytes:
    """Mono float32 samples as a 16-bit PCM WAV (the standard library writes it; no codec needed)."""
    pcm = np.round(np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
