"""Audio files for tests: tones and espeak-ng speech, encoded with PyAV into every upload format."""

from __future__ import annotations

import io

import av
import numpy as np

# upload name -> (muxer, codec)
CONTAINERS: dict[str, tuple[str, str]] = {
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "libmp3lame"),
    "mpga": ("mp3", "libmp3lame"),  # bare MPEG audio frames (no ID3 tag)
    "mp4": ("mp4", "aac"),
    "m4a": ("ipod", "aac"),
    "mpeg": ("mpeg", "mp2"),
    "ogg": ("ogg", "libopus"),
    "wav": ("wav", "pcm_s16le"),
    "webm": ("webm", "libopus"),
}


def tone(seconds: float = 1.0, rate: int = 44100, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(samples: np.ndarray, rate: int, name: str, *, channels: int = 2) -> bytes:
    """``samples`` (mono float32) as a file of upload type ``name``, in ``channels`` channels."""
    muxer, codec = CONTAINERS[name]
    buf = io.BytesIO()
    options = {"id3v2_version": "0", "write_xing": "0"} if name == "mpga" else {}
    out_rate = 48000 if codec == "libopus" else rate
    with av.open(buf, mode="w", format=muxer, options=options) as container:
        stream = container.add_stream(codec, rate=out_rate)
        stream.layout = "stereo" if channels == 2 else "mono"
        # packed "flt": one plane of interleaved samples (L R L R ... for stereo)
        data = np.repeat(samples, channels).reshape(1, -1).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(data, format="flt", layout=stream.layout.name)
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=stream.layout.name, rate=out_rate)
        for f in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def duration_of(data: bytes) -> float:
    """Seconds of audio in an encoded file, by decoding it with PyAV."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    return encode(samples, rate, "wav", channels=1)
