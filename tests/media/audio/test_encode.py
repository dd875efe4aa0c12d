from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from mmserve.media.audio.dsp import Resampler, Tempo
from mmserve.media.audio.encode import CONTENT_TYPES, OUTPUT_RATE, SPEECH_FORMATS, AudioEncoder, encode_all
from tests.helpers.audio import duration_of, tone

RATE = 22050  # espeak-ng's rate: every format is resampled to 24 kHz
CLIP = tone(2.0, rate=RATE)
CHUNK = RATE // 10


def _streamed(fmt: str) -> list[bytes]:
    enc = AudioEncoder(fmt, streaming=True)
    parts = [enc.push(CLIP[i : i + CHUNK], RATE) for i in range(0, len(CLIP), CHUNK)]
    parts.append(enc.finish())
    assert enc.seconds == pytest.approx(2.0, abs=0.01)
    return parts


@pytest.mark.parametrize("fmt", SPEECH_FORMATS)
def test_every_format_decodes_to_the_right_length(fmt: str) -> None:
    data = b"".join(_streamed(fmt))
    seconds = len(data) / 2 / OUTPUT_RATE if fmt == "pcm" else duration_of(data)
    assert seconds == pytest.approx(2.0, abs=0.08)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "wav", "pcm"])
def test_streamed_formats_send_bytes_as_audio_arrives(fmt: str) -> None:
    parts = _streamed(fmt)
    assert sum(1 for p in parts[:-1] if p) >= len(parts) // 2  # most pushes already produce bytes


def test_flac_is_sent_complete_with_its_length_in_the_header() -> None:
    parts = _streamed("flac")
    assert not any(parts[:-1]) and parts[-1][:4] == b"fLaC"
    with sf.SoundFile(io.BytesIO(parts[-1])) as f:  # libsndfile needs STREAMINFO's length
        assert f.frames == pytest.approx(2 * OUTPUT_RATE, abs=10) and f.samplerate == OUTPUT_RATE


def test_streamed_wav_says_unknown_length_and_still_reads() -> None:
    data = b"".join(_streamed("wav"))
    assert data[:4] == b"RIFF" and data[4:8] == b"\xff\xff\xff\xff"
    samples, rate = sf.read(io.BytesIO(data))
    assert rate == OUTPUT_RATE and len(samples) / rate == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_buffered_files_have_exact_headers(fmt: str) -> None:
    data = encode_all([(CLIP[:RATE], RATE), (CLIP[RATE:], RATE)], fmt)
    info = sf.info(io.BytesIO(data))
    assert info.samplerate == OUTPUT_RATE and info.channels == 1
    assert info.frames == pytest.approx(2 * OUTPUT_RATE, abs=10)


def test_pcm_is_raw_little_endian_int16() -> None:
    data = b"".join(_streamed("pcm"))
    samples = np.frombuffer(data, "<i2")
    assert np.abs(samples).max() == pytest.approx(0.3 * 32767, rel=0.02)


def test_content_types() -> None:
    assert CONTENT_TYPES["mp3"] == "audio/mpeg" and CONTENT_TYPES["wav"] == "audio/wav"
    assert CONTENT_TYPES["opus"].startswith("audio/ogg") and CONTENT_TYPES["pcm"].startswith("audio/pcm")
    assert set(CONTENT_TYPES) == set(SPEECH_FORMATS)


def test_rate_changes_within_a_stream_are_refused() -> None:
    enc = AudioEncoder("mp3")
    enc.push(CLIP[:CHUNK], RATE)
    with pytest.raises(ValueError):
        enc.push(CLIP[:CHUNK], 16000)


def test_resampler_keeps_duration() -> None:
    r = Resampler(RATE, 16000)
    out = np.concatenate([r.push(CLIP[i : i + 1000]) for i in range(0, len(CLIP), 1000)] + [r.flush()])
    assert len(out) / 16000 == pytest.approx(2.0, abs=0.005)


@pytest.mark.parametrize("factor", [0.25, 0.6, 1.5, 4.0])
def test_tempo_changes_duration_by_the_factor(factor: float) -> None:
    t = Tempo(RATE, factor)
    out = np.concatenate([t.push(CLIP[i : i + CHUNK]) for i in range(0, len(CLIP), CHUNK)] + [t.flush()])
    assert len(out) / RATE == pytest.approx(2.0 / factor, rel=0.05)
