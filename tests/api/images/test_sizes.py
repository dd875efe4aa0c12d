"""Size rules of image cards: listed sizes, pixel caps, defaults and 'auto' for edits."""

from __future__ import annotations

import pytest

from mmserve.api.images.sizes import SizeRules, parse_size
from mmserve.cards import ModelCard
from mmserve.errors import InvalidRequestError
from mmserve.settings import LimitSettings


def _rules(sizes: list[str] | None = None, max_pixels: int | None = None) -> SizeRules:
    card = ModelCard.model_validate(
        {
            "id": "m",
            "task": "image-generation",
            "engine": "diffusers-image",
            "capabilities": {"sizes": sizes or []},
            "limits": {"max_image_pixels": max_pixels},
        }
    )
    return SizeRules.for_card(card, LimitSettings())


def test_parse_size() -> None:
    assert parse_size("1024x768") == (1024, 768)
    assert parse_size(" 512 X 512 ") == (512, 512)
    assert parse_size("auto") is None and parse_size(None) is None
    for bad in ("1024", "0x512", "axb", "1024x768x3", "-5x5"):
        with pytest.raises(InvalidRequestError) as e:
            parse_size(bad)
        assert e.value.param == "size"


def test_listed_sizes() -> None:
    r = _rules(["512x512", "1024x1024"])
    assert r.check(1024, 1024) == (1024, 1024)
    assert r.default() == (512, 512)
    with pytest.raises(InvalidRequestError) as e:
        r.check(768, 768)
    assert "512x512, 1024x1024" in e.value.message and e.value.code == "unsupported_size"


def test_default_cap_is_one_megapixel() -> None:
    r = _rules()
    assert r.max_pixels == 1024 * 1024 and r.default() == (1024, 1024)
    assert r.check(1024, 1024) and r.check(1280, 768)
    for w, h in ((1024, 1032), (32, 512), (5000, 64)):
        with pytest.raises(InvalidRequestError) as e:
            r.check(w, h)
        assert "1048576 pixels" in e.value.message


def test_card_pixel_cap_and_its_default() -> None:
    r = _rules(max_pixels=300 * 300)
    assert r.default() == (256, 256)
    with pytest.raises(InvalidRequestError):
        r.check(512, 512)


def test_auto_for_edits() -> None:
    listed = _rules(["512x512", "1024x768", "768x1024"])
    assert listed.for_input(300, 200) == (1024, 768)  # closest shape
    assert listed.for_input(200, 300) == (768, 1024)
    assert listed.for_input(100, 100) == (512, 512)
    free = _rules(max_pixels=512 * 512)
    assert free.for_input(640, 320) == (640, 320)
    assert free.for_input(4000, 3000) == (576, 384)  # scaled into 262144 pixels, rounded down to 64s
    assert free.for_input(100, 90) == (64, 64)


@pytest.mark.parametrize(("width", "height"), [(1000, 8), (8, 1000), (1600, 16), (3000, 40)])
def test_auto_for_thin_edits_stays_within_the_pixel_cap(width: int, height: int) -> None:
    # the short side is raised to 64: the long side must shrink, not overflow the cap (a 400 for 'auto')
    free = _rules(max_pixels=128 * 128)
    w, h = free.for_input(width, height)
    assert free.check(w, h) == (w, h) and w * h <= 128 * 128
    assert (w > h) == (width > height)
