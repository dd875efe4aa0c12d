"""Transcript figures every speech-recognition engine reports the same way."""

from __future__ import annotations

import zlib


def compression_ratio(text: str) -> float:
    """gzip-style ratio that Whisper uses to detect repetition loops (> 2.4: suspicious)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
