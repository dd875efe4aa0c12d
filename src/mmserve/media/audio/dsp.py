"""Streaming resampling and tempo change of mono float32 PCM, with FFmpeg's filters via PyAV."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np


def _frame(samples: np.ndarray, rate: int) -> Any:
    import av

    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), "flt", "mono")
    frame.sample_rate = rate
    return frame


def _join(frames: list[Any]) -> np.ndarray:
    arrays = [f.to_ndarray().reshape(-1) for f in frames]
    return np.concatenate(arrays).astype(np.float32, copy=False) if arrays else np.zeros(0, np.float32)


class Resampler:
    """Mono float32 at ``in_rate`` -> mono float32 at ``out_rate``, chunk by chunk (libswresample)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        import av

        self.in_rate, self.out_rate = in_rate, out_rate
        self._same = in_rate == out_rate
        self._r = None if self._same else av.AudioResampler(format="flt", layout="mono", rate=out_rate)

    def push(self, samples: np.ndarray) -> np.ndarray:
        if samples.size == 0:
            return np.zeros(0, np.float32)
        if self._r is None:
            return np.asarray(samples, dtype=np.float32).reshape(-1)
        return _join(self._r.resample(_frame(samples, self.in_rate)))

    def flush(self) -> np.ndarray:
        return np.zeros(0, np.float32) if self._r is None else _join(self._r.resample(None))


class Tempo:
    """Change speed without changing pitch (FFmpeg's ``atempo``, chained for factors beyond 0.5-2)."""

    def __init__(self, rate: int, factor: float) -> None:
        import av

        self.rate, self.factor = rate, factor
        self._graph = av.filter.Graph()
        src = self._graph.add_abuffer(format="flt", sample_rate=rate, layout="mono", time_base=Fraction(1, rate))
        node = src
        for f in _atempo_steps(factor):
            step = self._graph.add("atempo", f"{f:.6f}")
            node.link_to(step)
            node = step
        sink = self._graph.add("abuffersink")
        node.link_to(sink)
        self._graph.configure()
        self._pts = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        if samples.size == 0:
            return np.zeros(0, np.float32)
        frame = _frame(samples, self.rate)
        frame.pts = self._pts
        self._pts += samples.size
        self._graph.push(frame)
        return self._drain()

    def flush(self) -> np.ndarray:
        self._graph.push(None)
        return self._drain()

    def _drain(self) -> np.ndarray:
        import av

        frames = []
        while True:
            try:
                frames.append(self._graph.pull())
            except (av.error.BlockingIOError, av.error.EOFError):
                break
        return _join(frames)


def _atempo_steps(factor: float) -> list[float]:
    """atempo takes 0.5-100 per instance; slower factors are split into several of >= 0.5."""
    steps = []
    while factor < 0.5:
        steps.append(0.5)
        factor /= 0.5
    steps.append(factor)
    return steps
