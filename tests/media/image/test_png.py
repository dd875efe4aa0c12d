"""Plain PNGs decode through libpng: the same pixels as Pillow's decoder, everything else stays with Pillow."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from mmserve.media.image import png
from mmserve.media.image.decode import ImageInputSize, ImageLimits, decode_image
from tests.helpers import hostile as h

LIMITS = ImageLimits(min_side=1)


def _both(data: bytes, monkeypatch: pytest.MonkeyPatch, **kw: object) -> tuple[Image.Image, Image.Image]:
    """(decoded on the fast path, decoded by Pillow alone) for the same bytes."""
    fast = decode_image(data, LIMITS, param="p", **kw)  # type: ignore[arg-type]
    with monkeypatch.context() as m:
        m.setattr("mmserve.media.image.decode.decode_png", lambda img, data: None)
        slow = decode_image(data, LIMITS, param="p", **kw)  # type: ignore[arg-type]
    return fast, slow


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("kw", [{}, {"input_size": ImageInputSize(shortest_edge=64)}, {"keep_alpha": True}])
def test_plain_pngs_give_pillows_pixels(mode: str, kw: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    img = h.noisy((300, 200)).convert(mode)
    if mode == "RGBA":
        alpha = np.random.default_rng(2).integers(0, 256, (200, 300), dtype=np.uint8)
        img.putalpha(Image.fromarray(alpha))
    data = h.encode(img, "PNG")
    assert png.fast_png_applies(Image.open(io.BytesIO(data)), data)
    assert png.decode_png(Image.open(io.BytesIO(data)), data) is not None
    fast, slow = _both(data, monkeypatch, **kw)
    assert fast.mode == slow.mode and fast.size == slow.size and fast.tobytes() == slow.tobytes()


def test_a_png_from_another_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    import imagecodecs

    arr = np.asarray(h.noisy((120, 80)))
    data = imagecodecs.png_encode(arr, level=1, strategy=3, filter=16)  # libpng's writer, one filter
    fast, slow = _both(bytes(data), monkeypatch)
    assert fast.tobytes() == slow.tobytes() == arr.tobytes()


def test_what_the_fast_path_leaves_to_pillow() -> None:
    def opened(img: Image.Image, **params: object) -> tuple[Image.Image, bytes]:
        data = h.encode(img, "PNG", **params)
        return Image.open(io.BytesIO(data)), data

    grey = opened(Image.new("L", (16, 16), 7))
    palette = opened(Image.new("P", (16, 16), 3))
    keyed = opened(Image.new("RGB", (16, 16), (1, 2, 3)), transparency=(1, 2, 3))
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = opened(Image.new("RGB", (16, 16)), exif=exif.tobytes())
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", "exif\n  10\n0000")
    magick = opened(Image.new("RGB", (16, 16)), pnginfo=info)
    for img, data in (grey, palette, keyed, turned, magick):
        assert not png.fast_png_applies(img, data)
    plain, data = opened(Image.new("RGB", (16, 16)))
    assert png.fast_png_applies(plain, data)
    assert not png.fast_png_applies(plain, data[:-12])  # no IEND: the walk cannot vouch for the rest


def test_an_orientation_in_a_png_still_turns_it() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # turned: 90 degrees clockwise to show
    data = h.encode(Image.new("RGB", (40, 20)), "PNG", exif=exif.tobytes())
    assert decode_image(data, LIMITS, param="p").size == (20, 40)
