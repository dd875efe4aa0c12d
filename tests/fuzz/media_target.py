"""An atheris (libFuzzer) target over the header parsing of user images and audio.

    python tests/fuzz/media_target.py [libFuzzer options] [CORPUS_DIR ...]

Each input goes through what the server runs on uploaded bytes before (and while) decoding:
the image sniffer and JPEG scan counter, ``check_bytes`` and ``decode_image`` (Pillow, under
small limits), the audio sniffer and ``decode_audio`` (PyAV/FFmpeg with the sniffed demuxer
forced, under small limits). A refusal (an ``MMServeError``: the 4xx the API answers) is the
expected outcome for most inputs; any other exception is a finding (it would be a 500), and
so is an input that takes longer than libFuzzer's ``-timeout`` or more memory than its
``-rss_limit_mb``. mmserve's media code and Pillow's Python plugins are instrumented for
coverage; the seeds in ``tests/fuzz/corpus`` are one tiny file per accepted format.
``tests/fuzz/test_media_fuzz.py`` runs this for a bounded time in the test suite.
"""

from __future__ import annotations

import contextlib
import sys
import warnings

import atheris

with atheris.instrument_imports(include=["mmserve.media", "PIL"]):
    from mmserve.errors import MMServeError
    from mmserve.media.audio.decode import AudioLimits, decode_audio, sniff_audio
    from mmserve.media.image.decode import ImageLimits, check_bytes, decode_image
    from mmserve.media.image.sniff import DECODABLE, jpeg_scan_count, label, sniff

IMAGE_LIMITS = ImageLimits(
    formats=tuple(DECODABLE), max_side=512, min_side=1, max_pixels=512 * 512, max_bytes=1 << 20, max_jpeg_scans=20
)
AUDIO_LIMITS = AudioLimits(max_bytes=1 << 20, max_seconds=3.0, timeout_s=2.0)


def fuzz_one(data: bytes) -> None:
    fmt = sniff(data)
    if fmt is not None:
        label(fmt)
    jpeg_scan_count(data)
    with contextlib.suppress(MMServeError):  # a refusal: the 4xx the API answers
        check_bytes(data, IMAGE_LIMITS, param="image")
        decode_image(data, IMAGE_LIMITS, param="image", target_side=64, keep_alpha=bool(data[-1:] == b"\x01"))
    sniff_audio(data)
    with contextlib.suppress(MMServeError):
        decode_audio(data, AUDIO_LIMITS, param="file")


def main() -> None:
    warnings.simplefilter("ignore")  # Pillow warns on odd files: noise here
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
