"""Hostile and unusual image files, generated (never stored): what users and attackers send."""

from __future__ import annotations

import io
import struct
import time
import zlib
from functools import cache

from PIL import Image

from tests.helpers.images import image_bytes


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG signature and IHDR declaring a huge image, with a tiny (bogus) IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )


def png_zlib_bomb(side: int = 4000) -> bytes:
    """A real, small PNG whose pixel data inflates to side*side*3 bytes (within limits)."""
    return encode(Image.new("RGB", (side, side), (0, 0, 0)), "PNG", optimize=False)


def jpeg_bomb_header(width: int = 65_000, height: int = 65_000) -> bytes:
    """A real small JPEG whose SOF marker is patched to declare a huge size."""
    data = bytearray(image_bytes((16, 16), fmt="JPEG"))
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            break
        i += 2 + length
    return bytes(data)


def webp_bomb_header(width: int = 16_383, height: int = 16_383) -> bytes:
    """An extended (VP8X) WEBP header declaring a 16383x16383 canvas (the format's maximum)."""
    vp8x = bytes([0, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * keep))]


def noisy(size: tuple[int, int] = (96, 64)) -> Image.Image:
    """An image with detail, so that truncating its file really loses data."""
    return Image.effect_noise(size, 64).convert("RGB")


def animated(fmt: str, frames: int = 3, size: tuple[int, int] = (32, 32)) -> bytes:
    images = [Image.new("RGB", size, (40 * i, 80, 160)) for i in range(frames)]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=100, loop=0)


def cmyk_jpeg(size: tuple[int, int] = (40, 24), cmyk: tuple[int, int, int, int] = (0, 255, 255, 0)) -> bytes:
    """Pure red in CMYK."""
    return encode(Image.new("CMYK", size, cmyk), "JPEG", quality=95)


def png16(size: tuple[int, int] = (32, 16), value: int = 0x8080) -> bytes:
    """16-bit greyscale PNG, every pixel ``value`` (0x8080 -> 128 in 8 bit)."""
    return encode(Image.new("I;16", size, value), "PNG")


def exif_rotated_jpeg(size: tuple[int, int] = (64, 32), orientation: int = 6) -> bytes:
    """A landscape JPEG (left half red, right half blue) tagged to be shown rotated."""
    img = Image.new("RGB", size, (255, 0, 0))
    img.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


def progressive_jpeg_with_scans(side: int, extra_scans: int) -> bytes:
    """A flat progressive JPEG with its last scan repeated: every scan costs a pass over all blocks."""
    data = encode(Image.new("RGB", (side, side), (120, 60, 200)), "JPEG", progressive=True, quality=50)
    last_sos = data.rindex(b"\xff\xda")
    end = data.rindex(b"\xff\xd9")
    scan = data[last_sos:end]
    return data[:end] + scan * extra_scans + data[end:]


def with_junk_after_first_segment(data: bytes, junk: bytes = b"\x00") -> bytes:
    """A JPEG with ``junk`` between its first header segment and the next: libjpeg and Pillow skip it."""
    end = 4 + int.from_bytes(data[4:6], "big")
    return data[:end] + junk + data[end:]


@cache
def slow_jpeg() -> bytes:
    """Within every limit (4000x4000, 99 scans) yet slow: about 2 s of decoding on a 2-core box."""
    return progressive_jpeg_with_scans(4000, 89)


@cache
def decode_time_limit() -> float:
    """A decode time limit that :func:`slow_jpeg` surely exceeds on this machine, and small test
    images surely meet: a quarter of its measured decode time, at most 0.5 s."""
    from mmserve.media.image.decode import ImageLimits, decode_image

    start = time.perf_counter()
    decode_image(slow_jpeg(), ImageLimits(), param="calibration")
    return round(min(0.5, (time.perf_counter() - start) / 4), 3)


def transparent_palette_png(size: tuple[int, int] = (16, 16)) -> bytes:
    """A palette PNG whose colour 0 is fully transparent (tRNS), all pixels colour 0."""
    img = Image.new("P", size, 0)
    img.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    return encode(img, "PNG", transparency=0)


def heic_header() -> bytes:
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64


HTML_PAGE = b"<!DOCTYPE html><html><head><title>Login</title></head><body>Sign in</body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
