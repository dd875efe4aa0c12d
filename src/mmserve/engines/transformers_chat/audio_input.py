"""Audio for a transformers processor's feature extractor: at the sample rate it expects."""

from __future__ import annotations

from typing import Any


def resample(clip: tuple[Any, int], rate: int) -> Any:
    """``(samples, rate)`` mono float32 -> samples at ``rate``.

    The media layer decodes to 16 kHz, what Whisper-style feature extractors (Qwen2-Audio...)
    take, so this is a no-op for them; other rates are linearly interpolated (a model whose
    extractor wants another rate gets the same signal, band-limited to the 8 kHz it had).
    """
    import numpy as np

    samples, source = clip
    if source == rate or len(samples) == 0:
        return samples
    n = max(1, round(len(samples) * rate / source))
    positions = np.arange(n, dtype=np.float64) * (source / rate)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
