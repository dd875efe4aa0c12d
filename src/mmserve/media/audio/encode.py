"""Encode synthesized speech into the OpenAI response formats with PyAV (FFmpeg's encoders).

:class:`AudioEncoder` is incremental: ``push()`` float32 chunks as the engine produces them
and send the bytes it returns right away; ``finish()`` flushes the rest. Everything is
resampled to 24 kHz mono, the rate OpenAI's speech endpoint uses (and the one clients of
``pcm`` assume).

=======  =====================  ==============================================================
format   encoder / container    streamed?
=======  =====================  ==============================================================
mp3      libmp3lame / mp3       yes (no Xing/ID3 header, which would need a seek back)
opus     libopus / Ogg          yes (an Ogg page every 100 ms)
aac      FFmpeg aac / ADTS      yes
wav      pcm_s16le / RIFF       yes; streamed RIFF sizes are 0xFFFFFFFF ("until the end"), as
                                FFmpeg writes them on unseekable output; exact when buffered
pcm      raw s16le              yes
flac     FFmpeg flac / FLAC     no: sent complete, so STREAMINFO carries the length (libsndfile
                                refuses a FLAC stream of unknown length)
=======  =====================  ==============================================================
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from mmserve.media.audio.dsp import Resampler

OUTPUT_RATE = 24000
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm; rate=24000; channels=1; encoding=s16le",
}
# format -> (muxer, codec, muxer options)
_CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mp3": ("mp3", "libmp3lame", {"write_xing": "0", "id3v2_version": "0"}),
    "opus": ("ogg", "libopus", {"page_duration": "100000"}),
    "aac": ("adts", "aac", {}),
    "flac": ("flac", "flac", {}),
    "wav": ("wav", "pcm_s16le", {}),
}
_STREAMED = frozenset({"mp3", "opus", "aac", "wav", "pcm"})


class _Sink(io.RawIOBase):
    """A write-only, unseekable file for the muxer: what it writes is drained after each push."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._parts.append(data)
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class AudioEncoder:
    """Incremental encoder for one response. Not thread-safe; use it from one thread at a time."""

    def __init__(self, fmt: str, *, streaming: bool = True) -> None:
        if fmt not in SPEECH_FORMATS:
            raise ValueError(f"unknown speech format {fmt!r}")
        self.format = fmt
        self.content_type = CONTENT_TYPES[fmt]
        self.streaming = streaming and fmt in _STREAMED
        self.samples_in = 0  # at OUTPUT_RATE
        self._resampler: Resampler | None = None
        self._container: Any = None
        self._stream: Any = None
        self._buffer: io.BytesIO | _Sink | None = None
        self._pending: list[bytes] = []  # pcm / buffered formats

    @property
    def seconds(self) -> float:
        return self.samples_in / OUTPUT_RATE

    def push(self, samples: Any, sample_rate: int) -> bytes:
        """Encode mono float32 ``samples`` at ``sample_rate``; return the bytes ready to send."""
        if self._resampler is None:
            self._resampler = Resampler(sample_rate, OUTPUT_RATE)
        elif self._resampler.in_rate != sample_rate:
            raise ValueError("the sample rate changed within one stream")
        return self._encode(self._resampler.push(np.asarray(samples, dtype=np.float32)))

    def finish(self) -> bytes:
        """Flush the encoder and the container; return the remaining bytes (everything, if buffered)."""
        tail = self._encode(self._resampler.flush()) if self._resampler is not None else b""
        if self.format == "pcm":
            return tail
        self._open()
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        if isinstance(self._buffer, io.BytesIO):
            return self._buffer.getvalue()
        assert isinstance(self._buffer, _Sink)
        return tail + self._buffer.drain()

    # ------------------------------------------------------------------ internals

    def _encode(self, pcm: np.ndarray) -> bytes:
        if pcm.size == 0:
            return b""
        self.samples_in += int(pcm.shape[0])
        if self.format == "pcm":
            return _to_s16(pcm).tobytes()
        import av

        self._open()
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = OUTPUT_RATE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._buffer.drain() if isinstance(self._buffer, _Sink) else b""

    def _open(self) -> None:
        if self._container is not None:
            return
        import av

        muxer, codec, options = _CODECS[self.format]
        # Buffered output is seekable, so the muxer writes exact sizes into the header at the end.
        self._buffer = _Sink() if self.streaming else io.BytesIO()
        self._container = av.open(self._buffer, mode="w", format=muxer, options=options)
        self._stream = self._container.add_stream(codec, rate=OUTPUT_RATE)
        self._stream.layout = "mono"


def _to_s16(pcm: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.round(np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2")
    return out


def encode_all(chunks: list[tuple[Any, int]], fmt: str) -> bytes:
    """Encode a whole clip at once (exact headers, e.g. for the JSON envelope)."""
    enc = AudioEncoder(fmt, streaming=False)
    out = [enc.push(samples, rate) for samples, rate in chunks]
    out.append(enc.finish())
    return b"".join(out)
