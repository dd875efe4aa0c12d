"""What a blob really is, read from its first bytes (never from a MIME type or file name).

:func:`sniff` names the decodable image formats (the ones Pillow opens here) and also the
common things that are not: other image formats (HEIC, SVG, ICO, ...), and the documents a
URL hands back by mistake (an HTML page, JSON, a PDF), so a 415 can say what was received.
"""

from __future__ import annotations

import numpy as np

#: format -> Pillow's plugin name, for the formats mmserve can decode
DECODABLE = {
    "png": "PNG",
    "jpeg": "JPEG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
    "avif": "AVIF",
}

_LABELS = {
    **DECODABLE,  # Pillow's plugin names are also the names people know these formats by
    "heic": "HEIC/HEIF",
    "jxl": "JPEG XL",
    "jp2": "JPEG 2000",
    "ico": "ICO",
    "psd": "Photoshop PSD",
    "svg": "SVG",
    "pdf": "PDF",
    "html": "an HTML page",
    "xml": "XML",
    "json": "JSON",
    "zip": "a ZIP archive",
    "gzip": "gzip-compressed data",
}

_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"\xff\x0a", "jxl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jp2"),
    (b"\x00\x00\x01\x00", "ico"),
    (b"8BPS", "psd"),
    (b"%PDF-", "pdf"),
    (b"PK\x03\x04", "zip"),
    (b"\x1f\x8b", "gzip"),
]
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def sniff(data: bytes) -> str | None:
    """The format name of ``data`` (a key of :data:`DECODABLE` or another known kind), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        box = data[: min(len(data), int.from_bytes(data[:4], "big"), 256)]
        if brand in (b"avif", b"avis") or b"avif" in box[16:]:
            return "avif"
        if brand in _HEIF_BRANDS:
            return "heic"
        return None
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return _sniff_text(data[:512])


def label(fmt: str) -> str:
    """A human name for a sniffed format: 'WEBP', 'an HTML page'."""
    return _LABELS.get(fmt, fmt.upper())


def _sniff_text(head: bytes) -> str | None:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "svg"
    if text.startswith(b"<?xml"):
        return "xml"
    if text[:1] in (b"{", b"["):
        return "json"
    return None


def count_sos(data: bytes, start: int) -> int:
    """``data.count(b"\\xff\\xda", start)``, ~9x faster on JPEG data (0.1 vs 0.9 ms for 1 MB here):
    bytes.count's two-byte search is slowed by the many 0xFF bytes of entropy-coded data. Two
    byte-wise comparisons of the data with itself shifted by one: memory is twice the data's
    size whatever it holds (an index of its 0xFF bytes would be 8 bytes per 0xFF). The pair
    cannot overlap itself, so both count the same."""
    a = np.frombuffer(data, np.uint8, offset=min(start, len(data)))
    return int(np.count_nonzero((a[:-1] == 0xFF) & (a[1:] == 0xDA)))


# markers without a length (TEM, RST0-7): libjpeg reads them as two bytes
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))


def jpeg_scan_count(data: bytes) -> int | None:
    """The number of scans (SOS segments) of a JPEG counted without decoding it, or None when
    its header cannot be walked to a first scan (such a file is to be refused, never waved through).

    Walks the marker segments up to the first scan the way libjpeg's ``next_marker`` does (and
    Pillow's header parser, which agrees): bytes other than 0xFF between segments are skipped,
    as are 0xFF fill bytes and stuffed ``FF 00`` pairs, so junk cannot end the walk early while
    the decoder goes on to read every scan. Segments are skipped by their length, so metadata
    (an EXIF thumbnail) is not counted. From the first scan on every ``FF DA`` is counted: in
    entropy-coded data a 0xFF byte is always stuffed (FF 00) or starts a marker, so each real
    SOS is there (a ``FF DA`` inside a later table or comment only counts too many, never too few).
    Header trouble that libjpeg itself fails on (a segment running past the end or shorter
    than its length field, a second SOI, EOI before any scan, no scan at all) gives None.
    """
    end = len(data)
    i = 2
    while True:
        i = data.find(b"\xff", i)
        if i < 0:
            return None
        while i < end and data[i] == 0xFF:  # the marker's 0xFF and any fill bytes before it
            i += 1
        if i >= end:
            return None
        marker = data[i]
        i += 1
        if marker == 0x00 or marker in _STANDALONE:  # a stuffed zero (libjpeg discards it), RSTn, TEM
            continue
        if marker == 0xDA:
            return 1 + count_sos(data, i)
        if marker in (0xD8, 0xD9):  # a second SOI, or the image ends before any scan
            return None
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2 or i + length > end:
            return None
        i += length
