from __future__ import annotations

import pytest

from mmserve.api.audio_usage import AudioUsage
from mmserve.api.speech.protocol import wants_json
from mmserve.api.transcriptions import transcripts
from mmserve.engines.types import Segment, Transcript, Word

T = Transcript(
    text="Hello world. How are you?",
    language="en",
    duration=3661.5,
    segments=[
        Segment(0, 0.0, 1.0, " Hello world.", words=[Word("Hello", 0.0, 0.4), Word("world.", 0.4, 1.0)]),
        Segment(1, 3600.5, 3661.234, "How are you?", tokens=[1, 2], avg_logprob=-0.25, seek=360000),
    ],
)
USAGE = AudioUsage("m", "transcription", 3661.5)


def test_srt() -> None:
    assert transcripts.render_srt(T) == (
        "1\n00:00:00,000 --> 00:00:01,000\nHello world.\n\n2\n01:00:00,500 --> 01:01:01,234\nHow are you?\n"
    )


def test_vtt() -> None:
    assert transcripts.render_vtt(T) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello world.\n\n01:00:00.500 --> 01:01:01.234\nHow are you?\n"
    )


def test_text_and_json() -> None:
    assert transcripts.render_text(T) == "Hello world. How are you?\n"
    assert transcripts.render_json(T, USAGE) == {
        "text": "Hello world. How are you?",
        "usage": {"type": "duration", "seconds": 3661.5},
    }


def test_verbose_json() -> None:
    out = transcripts.render_verbose(T, USAGE, task="transcribe", segments=True, words=True)
    assert out["language"] == "english" and out["duration"] == 3661.5 and out["task"] == "transcribe"
    seg = out["segments"][1]
    assert seg == {
        "id": 1,
        "seek": 360000,
        "start": 3600.5,
        "end": 3661.234,
        "text": "How are you?",
        "tokens": [1, 2],
        "temperature": 0.0,
        "avg_logprob": -0.25,
        "compression_ratio": 0.0,
        "no_speech_prob": 0.0,
    }
    assert out["words"] == [{"word": "Hello", "start": 0.0, "end": 0.4}, {"word": "world.", "start": 0.4, "end": 1.0}]
    words_only = transcripts.render_verbose(T, USAGE, task="transcribe", segments=False, words=True)
    assert "segments" not in words_only and "words" in words_only


def test_usage_in_audio_seconds() -> None:
    speech = AudioUsage("tts", "speech", 2.34567, input_characters=42)
    assert speech.api() == {"type": "duration", "seconds": 2.346, "input_characters": 42}


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        ("application/json", True),
        ("application/json, text/plain", True),
        ("application/octet-stream", False),  # what the openai SDK sends
        ("application/json, audio/*", False),
        ("*/*", False),
        (None, False),
        ("", False),
    ],
)
def test_wants_json(accept: str | None, json: bool) -> None:
    assert wants_json(accept) is json
