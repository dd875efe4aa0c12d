"""Render a transcript in OpenAI's response formats: json, text, srt, vtt, verbose_json."""

from __future__ import annotations

from typing import Any

from mmserve.api.audio_usage import AudioUsage
from mmserve.engines.types import Segment, Transcript

CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def language_name(code: str) -> str:
    """OpenAI's verbose_json names the language ("english"); Whisper's table maps the codes."""
    try:  # the table ships with transformers (optional); without it, the code is the answer
        from transformers.models.whisper.tokenization_whisper import LANGUAGES
    except ImportError:  # pragma: no cover
        return code
    return str(LANGUAGES.get(code.lower(), code))


def render_json(t: Transcript, usage: AudioUsage) -> dict[str, Any]:
    return {"text": t.text, "usage": usage.api()}


def render_verbose(t: Transcript, usage: AudioUsage, *, task: str, segments: bool, words: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task": task,
        "language": language_name(t.language),
        "duration": round(t.duration, 3),
        "text": t.text,
    }
    if segments:
        out["segments"] = [_segment(s) for s in t.segments]
    if words:
        out["words"] = [{"word": w.word, "start": w.start, "end": w.end} for s in t.segments for w in s.words]
    out["usage"] = usage.api()
    return out


def _segment(s: Segment) -> dict[str, Any]:
    return {
        "id": s.id,
        "seek": s.seek,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": s.tokens,
        "temperature": s.temperature,
        "avg_logprob": round(s.avg_logprob, 6),
        "compression_ratio": round(s.compression_ratio, 6),
        "no_speech_prob": round(s.no_speech_prob, 6),
    }


def render_text(t: Transcript) -> str:
    return t.text + "\n"


def render_srt(t: Transcript) -> str:
    blocks = [
        f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(t.segments, start=1)
    ]
    return "\n".join(blocks)


def render_vtt(t: Transcript) -> str:
    blocks = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text.strip()}\n" for s in t.segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"
