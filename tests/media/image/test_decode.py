from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageStat

from mmserve.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaError
from mmserve.media.image.decode import (
    ImageInputSize,
    ImageLimits,
    check_bytes,
    decode_image,
    keep_scale,
    plan_size,
)
from tests.helpers import hostile as h
from tests.helpers.images import image_bytes

LIMITS = ImageLimits()


def decode(data: bytes, limits: ImageLimits = LIMITS, **kw: object) -> Image.Image:
    return decode_image(data, limits, param="p", **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ sizes


@pytest.mark.parametrize(
    ("size", "target", "expected"),
    [
        ((4000, 3000), ImageInputSize(shortest_edge=56), (75, 56)),  # CLIP: short side to 56
        ((3000, 4000), ImageInputSize(shortest_edge=336), (336, 448)),
        ((40, 30), ImageInputSize(shortest_edge=56), None),  # never upscaled
        ((1000, 500), ImageInputSize(height=224, width=224), (448, 224)),  # SigLIP: both sides >= 224
        ((2000, 1000), ImageInputSize(longest_edge=1000), (1000, 500)),
        ((4000, 3000), ImageInputSize(max_pixels=1_200_000), (1265, 949)),  # Qwen2-VL: pixel budget
        ((4000, 3000), ImageInputSize(shortest_edge=378, longest_edge=980), (980, 735)),  # the larger need
    ],
)
def test_plan_size_keeps_what_the_processor_uses(
    size: tuple[int, int], target: ImageInputSize, expected: tuple[int, int] | None
) -> None:
    assert plan_size(*size, input_size=target) == expected


def test_plan_size_with_a_side_cap() -> None:
    assert plan_size(4000, 3000, target_side=512) == (512, 384)
    assert plan_size(400, 300, target_side=512) is None
    # low detail caps below the processor's need; the cap wins
    assert plan_size(4000, 3000, target_side=512, input_size=ImageInputSize(shortest_edge=448)) == (512, 384)
    assert keep_scale(100, 100, ImageInputSize()) == 1.0


def test_downscale_matches_a_full_decode_then_resize() -> None:
    """JPEG draft + box reduction + Lanczos look like the slow path, within a few levels."""
    data = h.encode(h.noisy((2400, 1600)).resize((600, 400)).resize((2400, 1600)), "JPEG", quality=92)
    fast = decode(data, input_size=ImageInputSize(shortest_edge=100))
    assert fast.size == (150, 100)
    slow = Image.open(io.BytesIO(data)).convert("RGB").resize((150, 100), Image.Resampling.LANCZOS)
    diff = ImageStat.Stat(ImageChops.difference(fast, slow)).mean
    assert max(diff) < 4, diff


@pytest.mark.parametrize(
    ("resample", "expected"),
    [(None, Image.Resampling.LANCZOS), (Image.Resampling.BICUBIC, Image.Resampling.BICUBIC)],
)
def test_downscale_uses_the_processors_filter(resample: int | None, expected: Image.Resampling) -> None:
    image = h.noisy((600, 400))
    got = decode(h.encode(image, "PNG"), input_size=ImageInputSize(shortest_edge=100, resample=resample))
    want = image.convert("RGB").resize((150, 100), expected, reducing_gap=2.0)
    assert got.size == (150, 100) and got.tobytes() == want.tobytes()


# ------------------------------------------------------------------ normalisation


def test_exif_orientation_applied_before_sizing() -> None:
    img = decode(h.exif_rotated_jpeg((640, 320), orientation=6), input_size=ImageInputSize(shortest_edge=56))
    assert img.size == (56, 112)  # portrait now, short side 56
    top, bottom = img.getpixel((28, 10)), img.getpixel((28, 100))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is on top after a 90 degree turn
    assert bottom[2] > 200 and bottom[0] < 60


def test_cmyk_jpeg_colours() -> None:
    img = decode(h.cmyk_jpeg())
    assert img.mode == "RGB"
    r, g, b = img.getpixel((10, 10))  # type: ignore[misc]
    assert r > 240 and g < 20 and b < 20


def test_16_bit_greyscale_is_scaled_not_clipped() -> None:
    img = decode(h.png16(value=0x8080))
    assert img.mode == "RGB" and img.getpixel((3, 3)) == (128, 128, 128)
    assert decode(h.png16(value=1000)).getpixel((0, 0)) == (4, 4, 4)  # Pillow's convert("L") gives 255


@pytest.mark.parametrize(
    ("img", "expected"),
    [
        (Image.new("RGBA", (20, 20), (0, 0, 0, 0)), (255, 255, 255)),  # fully transparent -> white
        (Image.new("RGBA", (20, 20), (0, 0, 0, 128)), (127, 127, 127)),  # half-transparent black
        (Image.new("LA", (20, 20), (0, 255)), (0, 0, 0)),
    ],
)
def test_alpha_is_composited_onto_white(img: Image.Image, expected: tuple[int, int, int]) -> None:
    out = decode(h.encode(img, "PNG"))
    assert out.mode == "RGB"
    assert all(abs(a - b) <= 1 for a, b in zip(out.getpixel((5, 5)), expected, strict=True))  # type: ignore[arg-type]


def test_palette_and_rgb_transparency() -> None:
    assert decode(h.transparent_palette_png()).getpixel((3, 3)) == (255, 255, 255)
    rgb = h.encode(Image.new("RGB", (16, 16), (10, 20, 30)), "PNG", transparency=(10, 20, 30))
    assert decode(rgb).getpixel((3, 3)) == (255, 255, 255)


# ------------------------------------------------------------------ refusals


def test_bounds() -> None:
    limits = ImageLimits(max_side=100, max_pixels=100 * 80, min_side=10, max_aspect_ratio=5)
    assert decode(image_bytes((80, 60)), limits).size == (80, 60)
    with pytest.raises(PayloadTooLargeError, match="120x10"):
        decode(image_bytes((120, 10)), limits)
    with pytest.raises(PayloadTooLargeError, match="100x100"):  # sides fine, too many pixels
        decode(image_bytes((100, 100)), limits)
    with pytest.raises(InvalidRequestError, match="at least 10") as e:
        decode(image_bytes((9, 40)), limits)
    assert e.value.code == "image_too_small"
    with pytest.raises(InvalidRequestError) as e:
        decode(image_bytes((60, 11)), limits)
    assert e.value.code == "image_aspect_ratio"


def test_formats_follow_the_limits() -> None:
    with pytest.raises(UnsupportedMediaError, match="GIF"):
        decode(image_bytes(fmt="GIF"))
    assert decode(image_bytes(fmt="GIF"), ImageLimits(formats=("gif",))).mode == "RGB"
    with pytest.raises(UnsupportedMediaError) as e:
        decode(h.animated("GIF"), ImageLimits(formats=("gif",)))
    assert e.value.code == "animated_image"


def test_bomb_headers_refused_before_decoding() -> None:
    for data in (h.png_bomb_header(), h.png_bomb_header(5000, 5000), h.jpeg_bomb_header(), h.webp_bomb_header()):
        with pytest.raises(PayloadTooLargeError) as e:
            decode(data)
        assert e.value.code == "image_too_large" and "4000x4000" in e.value.message


def test_corrupt_files_never_echo_the_library() -> None:
    for data in (h.truncated(h.encode(h.noisy(), "PNG")), h.truncated(h.encode(h.noisy(), "JPEG"), 0.3)):
        with pytest.raises(InvalidRequestError) as e:
            decode(data)
        assert e.value.code == "invalid_image"
        assert e.value.message.endswith("is corrupt or truncated and cannot be decoded.")


def test_jpeg_with_too_many_scans() -> None:
    with pytest.raises(InvalidRequestError) as e:
        decode(h.progressive_jpeg_with_scans(32, 200))
    assert e.value.code == "image_too_complex"
    assert decode(h.progressive_jpeg_with_scans(32, 50)).size == (32, 32)


def test_junk_between_segments_does_not_hide_scans() -> None:
    data = h.with_junk_after_first_segment(h.progressive_jpeg_with_scans(32, 200))
    with pytest.raises(InvalidRequestError) as e:
        check_bytes(data, ImageLimits(), param="image")
    assert e.value.code == "image_too_complex" and "at most 100" in e.value.message


def test_a_jpeg_header_the_scan_counter_cannot_read_is_refused() -> None:
    data = h.progressive_jpeg_with_scans(32, 200)
    broken = data[:4] + b"\xff\xff" + data[6:]  # the first segment claims to run past the end
    with pytest.raises(InvalidRequestError) as e:
        check_bytes(broken, ImageLimits(), param="image")
    assert e.value.code == "invalid_image" and e.value.param == "image"
    assert "JPEG" in e.value.message
