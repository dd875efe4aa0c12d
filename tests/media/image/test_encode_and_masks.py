"""Output encoding (PNG/JPEG/WebP, compression, alpha) and inpainting masks from uploads."""

from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
from PIL import Image

from mmserve.media.image.decode import ImageLimits, decode_image
from mmserve.media.image.encode import encode_image, encode_images, png_level
from mmserve.media.image.masks import mask_from_image


def _noise(size: tuple[int, int] = (128, 96), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    channels = len(mode)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8), mode)


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_formats_round_trip() -> None:
    img = _noise()
    png = _open(encode_image(img, "png"))
    assert png.format == "PNG" and png.size == (128, 96) and np.array_equal(np.asarray(png), np.asarray(img))
    for fmt, pil in (("jpeg", "JPEG"), ("webp", "WEBP")):
        out = _open(encode_image(img, fmt))  # type: ignore[arg-type]
        assert out.format == pil and out.size == (128, 96) and out.mode == "RGB"


def test_compression_is_quality() -> None:
    img = _noise((256, 256))
    for fmt in ("jpeg", "webp"):
        best = encode_image(img, fmt, compression=100)  # type: ignore[arg-type]
        small = encode_image(img, fmt, compression=10)  # type: ignore[arg-type]
        assert len(small) < len(best) / 3


def test_alpha_kept_where_the_format_has_it_and_flattened_on_white_for_jpeg() -> None:
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    assert _open(encode_image(rgba, "png")).mode == "RGBA"
    assert _open(encode_image(rgba, "webp")).mode == "RGBA"
    jpeg = _open(encode_image(rgba, "jpeg"))
    assert jpeg.mode == "RGB" and min(jpeg.getpixel((16, 16))) > 245  # type: ignore[type-var]


def test_encode_images_runs_a_batch() -> None:
    out = asyncio.run(encode_images([_noise(), _noise((64, 64))], "png"))
    assert [_open(b).size for b in out] == [(128, 96), (64, 64)]


def test_encode_images_in_base64_are_the_same_files() -> None:
    images = [_noise(), _noise((64, 64), "RGBA"), _smooth()]
    plain = asyncio.run(encode_images(images, "png"))
    b64 = asyncio.run(encode_images(images, "png", b64=True))
    assert [base64.b64decode(b, validate=True) for b in b64] == plain


def _smooth(size: tuple[int, int] = (256, 256)) -> Image.Image:
    """Photo-like: a few colour fields, smoothly interpolated (PNG compresses it, unlike noise)."""
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)


def test_png_is_lossless_at_every_level_and_output_compression_picks_the_zlib_level() -> None:
    img = _smooth()
    fast, stored, best = (encode_image(img, "png", compression=c) for c in (None, 0, 100))
    for data in (fast, stored, best):
        assert np.array_equal(np.asarray(_open(data)), np.asarray(img))
    assert png_level(None) is None and png_level(0) == 0 and png_level(50) == 4 and png_level(100) == 9
    assert len(stored) > 256 * 256 * 3  # level 0: stored, not compressed
    assert len(best) < len(fast) < len(stored) / 2  # the fast default still compresses


def test_the_fast_png_is_lossless_at_any_size_with_or_without_alpha() -> None:
    rng = np.random.default_rng(2)
    for w, h in ((1, 1), (3, 7), (7, 3), (1, 300), (257, 129)):
        for channels, mode in ((3, "RGB"), (4, "RGBA")):
            pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
            img = _open(encode_image(Image.fromarray(pixels, mode), "png"))
            assert (img.mode, img.size) == (mode, (w, h))
            assert np.array_equal(np.asarray(img), pixels)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _decoded(data: bytes) -> Image.Image:
    """As the decode worker hands an edit's mask or image back: transparency kept when present."""
    return decode_image(data, ImageLimits(min_side=1), param="mask", keep_alpha=True)


def test_alpha_mask_transparent_means_repaint() -> None:
    m = Image.new("RGBA", (40, 20), (255, 255, 255, 255))
    m.paste((0, 0, 0, 0), (0, 0, 10, 20))
    mask = mask_from_image(_decoded(_png(m)))
    arr = np.asarray(mask)
    assert mask.mode == "L" and arr[:, :10].min() == 255 and arr[:, 10:].max() == 0


def test_palette_transparency_and_grayscale_masks() -> None:
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    p.paste(1, (0, 0, 4, 8))
    p.info["transparency"] = 1  # index 1 (the left half) is transparent
    buf = io.BytesIO()
    p.save(buf, "PNG", transparency=1)
    arr = np.asarray(mask_from_image(_decoded(buf.getvalue())))
    assert arr[:, :4].min() == 255 and arr[:, 4:].max() == 0
    gray = Image.new("L", (8, 8), 0)
    gray.paste(255, (0, 0, 8, 2))  # white = repaint (diffusers convention)
    arr = np.asarray(mask_from_image(_decoded(_png(gray))))
    assert arr.shape == (8, 8) and arr[:2].min() == 255 and arr[2:].max() == 0


def test_transparency_mask_only_when_something_is_transparent() -> None:
    from mmserve.media.image.masks import transparency_mask

    opaque = Image.new("RGBA", (8, 8), (1, 2, 3, 255))
    assert transparency_mask(_decoded(_png(opaque))) is None
    assert transparency_mask(_decoded(_png(Image.new("RGB", (8, 8))))) is None
    half = opaque.copy()
    half.paste((0, 0, 0, 0), (0, 0, 8, 4))
    mask = transparency_mask(_decoded(_png(half)))
    assert mask is not None and np.asarray(mask)[:4].min() == 255 and np.asarray(mask)[4:].max() == 0
