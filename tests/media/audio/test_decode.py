from __future__ import annotations

import io

import numpy as np
import pytest

from mmserve.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError
from mmserve.media.audio.decode import AUDIO_FORMATS, TARGET_RATE, AudioLimits, decode_audio, sniff_audio
from tests.helpers.audio import CONTAINERS, encode, tone, wav_bytes
from tests.helpers.images import image_bytes

TONE = tone(1.0, rate=44100)


@pytest.mark.parametrize("name", AUDIO_FORMATS)
def test_every_upload_format_decodes_to_16k_mono(name: str) -> None:
    data = encode(TONE, 44100, name)  # stereo 44.1 kHz (48 kHz for Opus)
    audio = decode_audio(data, AudioLimits())
    assert audio.sample_rate == TARGET_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(1.0, abs=0.08)  # codecs pad a frame or two
    # the tone survived: its energy sits at 440 Hz
    spectrum = np.abs(np.fft.rfft(audio.samples[: TARGET_RATE // 2]))
    assert np.argmax(spectrum) * 2 == pytest.approx(440, abs=4)


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_sniff_reads_the_container_from_the_bytes(name: str) -> None:
    expected = {"mpga": "mp3", "m4a": "mp4", "webm": "matroska"}.get(name, name)
    assert sniff_audio(encode(TONE[:4410], 44100, name)) == expected


def test_empty_is_400_naming_the_field() -> None:
    with pytest.raises(InvalidRequestError) as e:
        decode_audio(b"", AudioLimits(), param="file")
    assert e.value.param == "file" and "empty" in e.value.message


def test_size_is_capped_before_decoding() -> None:
    with pytest.raises(PayloadTooLargeError) as e:
        decode_audio(b"RIFF" + b"\0" * 2000, AudioLimits(max_bytes=1000))
    assert e.value.status_code == 413 and "1000 bytes" in e.value.message


@pytest.mark.parametrize(
    "data",
    [
        image_bytes(fmt="PNG"),
        b"just some text, not audio",
        b"\xff\xf1\x50\x80" + b"\0" * 64,  # ADTS AAC: a real audio stream, but not an upload format
        b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n",  # a playlist must never reach FFmpeg's probing
    ],
)
def test_other_bytes_are_415(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaError) as e:
        decode_audio(data, AudioLimits())
    assert e.value.status_code == 415 and "flac, mp3" in e.value.message


@pytest.mark.parametrize("name", ["wav", "flac", "mp3", "ogg", "mp4"])
def test_corrupt_files_are_400(name: str) -> None:
    data = encode(TONE, 44100, name)
    broken = data[:16] + bytes(b ^ 0x5A for b in data[16:200])  # keep the magic, mangle the headers
    with pytest.raises(InvalidRequestError) as e:
        decode_audio(broken, AudioLimits())
    assert e.value.code == "invalid_audio" and name.replace("mp4", "mp4") in e.value.message


def test_truncated_file_that_decodes_to_nothing_is_400() -> None:
    data = wav_bytes(TONE, 44100)[:44]  # a header and no samples
    with pytest.raises(InvalidRequestError) as e:
        decode_audio(data, AudioLimits())
    assert e.value.code == "invalid_audio"


def test_too_long_is_400_with_the_limit() -> None:
    data = wav_bytes(np.zeros(16000 * 3, np.float32), 16000)
    assert decode_audio(data, AudioLimits(max_seconds=3.5)).duration == pytest.approx(3.0)
    with pytest.raises(InvalidRequestError) as e:
        decode_audio(data, AudioLimits(max_seconds=1.5))
    assert e.value.code == "audio_too_long" and "1.5 seconds" in e.value.message


def test_length_is_checked_while_decoding_not_only_from_the_header() -> None:
    data = bytearray(wav_bytes(np.zeros(16000 * 4, np.float32), 16000))
    at = data.find(b"data") + 4
    data[at : at + 4] = (0xFFFFFFFF).to_bytes(4, "little")  # data size "unknown", as streamed WAVs say
    for limit in (2.0, 3.5):  # 3.5: within the header check's 1 s tolerance, caught by the decode loop
        with pytest.raises(InvalidRequestError) as e:
            decode_audio(bytes(data), AudioLimits(max_seconds=limit))
        assert e.value.code == "audio_too_long"


def test_decode_deadline() -> None:
    data = encode(tone(3.0), 44100, "mp3")
    with pytest.raises(InvalidRequestError) as e:
        decode_audio(data, AudioLimits(timeout_s=0.0))
    assert e.value.code == "audio_decode_timeout"


def test_file_without_an_audio_track_is_400() -> None:
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as c:
        s = c.add_stream("libx264", rate=1)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for p in [*s.encode(frame), *s.encode(None)]:
            c.mux(p)
    with pytest.raises(InvalidRequestError) as e:
        decode_audio(buf.getvalue(), AudioLimits())
    assert "no audio track" in e.value.message


def _with_sample_rate(data: bytes, rate: int) -> bytes:
    """A canonical WAV (fmt chunk at byte 12) claiming ``rate`` samples per second."""
    import struct

    out = bytearray(data)
    out[24:28] = struct.pack("<I", rate)
    out[28:32] = struct.pack("<I", rate * 2 % 2**32)
    return bytes(out)


@pytest.mark.parametrize("rate", [1_325_416_064, 400_000_000, 384_001])
def test_an_absurd_sample_rate_is_refused_before_resampling(rate: int) -> None:
    # found by tests/fuzz: a 309-byte WAV claiming 1.3 GHz held a decode thread for 22-36 s in the
    # resampler (one native call: the decode deadline is only checked between frames)
    data = _with_sample_rate(wav_bytes(tone(0.05, rate=16000), 16000), rate)
    with pytest.raises(InvalidRequestError) as e:
        decode_audio(data, AudioLimits(timeout_s=600))
    assert e.value.code == "invalid_audio" and "sample rate" in e.value.message and str(rate) in e.value.message


def test_high_but_real_sample_rates_decode() -> None:
    data = encode(tone(0.2, rate=192000), 192000, "wav", channels=1)
    assert decode_audio(data, AudioLimits()).sample_rate == TARGET_RATE


def test_a_codec_without_a_decoder_is_400() -> None:
    # found by tests/fuzz: a WAV whose format tag names no codec has no codec context
    data = bytearray(wav_bytes(tone(0.05, rate=16000), 16000))
    data[20:22] = (0x00F8).to_bytes(2, "little")
    with pytest.raises(InvalidRequestError) as e:
        decode_audio(bytes(data), AudioLimits())
    assert e.value.code == "invalid_audio"
