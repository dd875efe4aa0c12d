"""Real speech for tests: espeak-ng (the library the engine uses) resampled for recognisers."""

from __future__ import annotations

import numpy as np

from mmserve.engines.espeak.engine import ESPEAK_VOICES
from mmserve.engines.espeak.lib import library
from mmserve.media.audio.dsp import Resampler


def speak(text: str, voice: str = "sage", rate: int = 16000) -> np.ndarray:
    """``text`` spoken by espeak-ng at 175 wpm, float32 mono at ``rate`` (Klatt voices recognise best)."""
    lib = library()
    chunks: list[np.ndarray] = []

    def sink(pcm: np.ndarray) -> bool:
        chunks.append(pcm.astype(np.float32) / 32768.0)
        return True

    lib.synthesize(text, ESPEAK_VOICES.get(voice, voice), 175, sink)
    r = Resampler(lib.sample_rate, rate)
    return np.concatenate([r.push(np.concatenate(chunks)), r.flush()])
