"""Decode and bound user audio with PyAV (FFmpeg): uploads -> mono float32 PCM at 16 kHz.

Every file a transcription model hears went through :func:`decode_audio`:

- size capped before anything is parsed (413), empty files refused (400);
- the container is sniffed from its magic bytes and only then handed to FFmpeg *with that
  demuxer forced*. Letting FFmpeg probe arbitrary bytes would expose every demuxer it has,
  including playlist/concat formats that open other files or URLs; forcing one of the nine
  accepted containers keeps the attack surface to what the API promises (415 otherwise);
- a sample rate above 384 kHz is refused before any resampling (the resampler's set-up for a
  rate of 1.3 GHz took tens of seconds in one native call);
- decoded and resampled to mono ``flt`` at the target rate as a stream, stopping as soon as
  the audio is longer than allowed (400) or the decode deadline passes, so neither a long
  file nor a decompression trick makes the server buffer or work without bound.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmserve.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError

TARGET_RATE = 16000
MAX_SAMPLE_RATE = 384_000  # the highest rate recorders and studio formats use (DXD 352.8 kHz, 384 kHz)
# The names the OpenAI API accepts for uploads (mpeg/mpga/m4a are spellings of the same containers).
AUDIO_FORMATS = ("flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm")


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_seconds: float = 600.0
    timeout_s: float = 60.0


@dataclass
class DecodedAudio:
    samples: Any  # numpy.ndarray[float32], mono
    sample_rate: int
    container: str  # the sniffed container ("wav", "mp3", "mp4", ...)

    @property
    def duration(self) -> float:
        return float(len(self.samples)) / self.sample_rate


def sniff_audio(data: bytes) -> str | None:
    """The FFmpeg demuxer for the container these bytes start with, or None."""
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mp4"  # also m4a: FFmpeg's mov/mp4 demuxer
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"  # EBML: webm (and mkv, which the same demuxer reads)
    if head[:4] == b"\x00\x00\x01\xba":
        return "mpeg"  # MPEG program stream (.mpeg)
    if head[:3] == b"ID3":
        return "mp3"
    # A bare MPEG audio frame: 11 sync bits, then a layer that is not "reserved" (ADTS AAC has 00 there).
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0:
        return "mp3"
    return None


def decode_audio(data: bytes, limits: AudioLimits, *, param: str = "file", rate: int = TARGET_RATE) -> DecodedAudio:
    """Bytes of an upload -> mono float32 PCM at ``rate``, within ``limits``."""
    import av

    if not data:
        raise InvalidRequestError(
            "The audio file is empty (0 bytes). Send a recording in one of: " + ", ".join(AUDIO_FORMATS) + ".",
            param=param,
            code="invalid_audio",
        )
    if len(data) > limits.max_bytes:
        raise PayloadTooLargeError(
            f"The audio file is {len(data)} bytes; the limit is {limits.max_bytes} bytes. "
            "Send a shorter or more compressed recording.",
            param=param,
            code="audio_too_large",
        )
    demuxer = sniff_audio(data)
    if demuxer is None:
        raise UnsupportedMediaError(
            "The file is not audio in a supported format. Supported: " + ", ".join(AUDIO_FORMATS) + ".",
            param=param,
        )
    deadline = time.monotonic() + limits.timeout_s
    max_samples = int(limits.max_seconds * rate)
    try:
        with av.open(io.BytesIO(data), mode="r", format=demuxer, metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidRequestError("The file has no audio track.", param=param, code="invalid_audio")
            stream = container.streams.audio[0]
            _check_sample_rate(stream, param)
            _check_declared_duration(container, stream, limits, param)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks: list[np.ndarray] = []
            total = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    total = _append(chunks, out, total, max_samples, limits, param)
                if time.monotonic() > deadline:
                    raise InvalidRequestError(
                        "The audio took too long to decode. Send a shorter or simpler file.",
                        param=param,
                        code="audio_decode_timeout",
                    )
            for out in resampler.resample(None):
                total = _append(chunks, out, total, max_samples, limits, param)
    except (InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError):
        raise
    except (av.FFmpegError, ValueError, OSError, EOFError):
        raise InvalidRequestError(
            f"The audio file could not be decoded as {_label(demuxer)}; it may be corrupt or truncated.",
            param=param,
            code="invalid_audio",
        ) from None
    if total == 0:
        raise InvalidRequestError("The audio file contains no sound samples.", param=param, code="invalid_audio")
    samples = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    return DecodedAudio(np.clip(samples, -1.0, 1.0, out=samples), rate, _label(demuxer))


def _append(chunks: list[np.ndarray], frame: Any, total: int, max_samples: int, limits: AudioLimits, param: str) -> int:
    arr = frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
    total += arr.shape[0]
    if total > max_samples:
        raise _too_long(limits, param)
    chunks.append(arr)
    return total


def _check_sample_rate(stream: Any, param: str) -> None:
    """Refuse a rate no recording has: resampling from it is one native call that no deadline
    can interrupt (a 309-byte WAV claiming 1.3 GHz took 22-36 s here)."""
    context = stream.codec_context
    if context is None:  # no decoder for this codec: decoding fails with a clear 400 next
        return
    rate = context.sample_rate or stream.rate or 0
    if not 0 < rate <= MAX_SAMPLE_RATE:
        raise InvalidRequestError(
            f"The audio's sample rate is {rate} Hz; accepted rates go up to {MAX_SAMPLE_RATE} Hz.",
            param=param,
            code="invalid_audio",
        )


def _check_declared_duration(container: Any, stream: Any, limits: AudioLimits, param: str) -> None:
    """Refuse early when the header already says the audio is too long (the decode loop checks again)."""
    seconds = None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000
    if seconds is not None and seconds > limits.max_seconds + 1.0:
        raise _too_long(limits, param)


def _too_long(limits: AudioLimits, param: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"The audio is longer than this model's limit of {limits.max_seconds:g} seconds. Split it into shorter files.",
        param=param,
        code="audio_too_long",
    )


def _label(demuxer: str) -> str:
    return {"matroska": "webm"}.get(demuxer, demuxer)
