from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mmserve.media.image.sniff import count_sos, jpeg_scan_count, label, sniff
from tests.helpers import hostile as h
from tests.helpers.images import image_bytes


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_decodable_formats_are_read_from_the_bytes(fmt: str) -> None:
    assert sniff(image_bytes(fmt=fmt)) == fmt.lower()


def test_avif_and_heic_by_brand() -> None:
    assert sniff(h.encode(Image.new("RGB", (16, 16)), "AVIF")) == "avif"
    assert sniff(h.heic_header()) == "heic"
    assert sniff(b"\x00\x00\x00\x18ftypmp42" + bytes(16)) is None  # an MP4 is not an image


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        (h.HTML_PAGE, "html", "an HTML page"),
        (b"\xef\xbb\xbf  \n<html><body>x</body></html>", "html", "an HTML page"),
        (h.SVG, "svg", "SVG"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "svg", "SVG"),
        (b"<?xml version='1.0'?><feed/>", "xml", "XML"),
        (b'{"error": "not found"}', "json", "JSON"),
        (h.PDF, "pdf", "PDF"),
        (b"PK\x03\x04rest", "zip", "a ZIP archive"),
        (b"\x1f\x8b\x08\x00", "gzip", "gzip-compressed data"),
        (b"8BPS\x00\x01", "psd", "Photoshop PSD"),
        (b"\x00\x00\x01\x00\x01\x00", "ico", "ICO"),
        (b"\xff\x0a\xfa\x7f", "jxl", "JPEG XL"),
    ],
)
def test_non_images_are_named(data: bytes, kind: str, words: str) -> None:
    assert sniff(data) == kind
    assert label(kind) == words


def test_unknown_bytes() -> None:
    assert sniff(b"") is None
    assert sniff(b"hello world") is None
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None


def test_jpeg_scan_count() -> None:
    assert jpeg_scan_count(image_bytes(fmt="JPEG")) == 1
    progressive = h.encode(Image.new("RGB", (32, 32)), "JPEG", progressive=True)
    assert 2 < jpeg_scan_count(progressive) < 20
    assert jpeg_scan_count(h.progressive_jpeg_with_scans(16, 300)) > 300
    # FF DA inside a metadata segment before the first scan is not a scan
    base = image_bytes(fmt="JPEG")
    payload = b"\xff\xda" * 50
    app2 = b"\xff\xe2" + (len(payload) + 2).to_bytes(2, "big") + payload
    assert jpeg_scan_count(base[:2] + app2 + base[2:]) == 1


@pytest.mark.parametrize("junk", [b"\x00", b"junk", b"\xff\x00", b"\xff\xff\xff", b"\x00" * 5000])
def test_scans_are_counted_past_bytes_the_decoder_skips(junk: bytes) -> None:
    # A non-0xFF byte between segments made the counter give up (0 scans) while Pillow and libjpeg
    # skip it and decode every scan: a 2,000-scan file held a decode worker for its full timeout.
    hostile = h.with_junk_after_first_segment(h.progressive_jpeg_with_scans(16, 300), junk)
    with Image.open(io.BytesIO(hostile)) as img:
        img.load()  # the decoder reads it
    assert jpeg_scan_count(hostile) is not None and jpeg_scan_count(hostile) > 300


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8garbage",  # no marker at all
        b"\xff\xd8",  # nothing after SOI
        b"\xff\xd8\xff\xe0\x7f\xff" + bytes(10),  # a segment running past the end
        b"\xff\xd8\xff\xe0\x00\x01rest\xff\xda",  # a segment length below 2
        b"\xff\xd8\xff\xd9\xff\xda",  # EOI before any scan
        b"\xff\xd8\xff\xd8\xff\xda",  # a second SOI
        b"\xff\xd8" + b"\xff" * 100,  # fill bytes only
    ],
)
def test_a_header_the_counter_cannot_walk_is_unreadable(data: bytes) -> None:
    assert jpeg_scan_count(data) is None


@pytest.mark.parametrize("seed", range(20))
def test_count_sos_counts_what_bytes_count_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # bytes drawn mostly from 0xFF, 0xDA and 0x00: runs like FF FF DA, FF DA at either end
    data = rng.choice(
        np.array([0xFF, 0xDA, 0x00, 0x12], np.uint8), size=int(rng.integers(0, 400)), p=[0.4, 0.3, 0.2, 0.1]
    )
    raw = data.tobytes()
    for start in (0, 1, len(raw) // 2, max(0, len(raw) - 1), len(raw), len(raw) + 3):
        assert count_sos(raw, start) == raw.count(b"\xff\xda", start)
