"""Which sizes a card can make: its listed sizes, or any size within its pixel and side limits.

``size`` is "WxH" or "auto". ``auto`` is the card's first listed size (or 1024x1024 within
the pixel cap) for generations, and follows the input image's shape for edits. A size the
model cannot make is a 400 whose message says what it can make.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mmserve.cards import ModelCard
from mmserve.errors import InvalidRequestError, clip
from mmserve.settings import LimitSettings

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX\u00d7]\s*(\d{1,5})\s*$")
DEFAULT_SIDE = 1024
AUTO_MULTIPLE = 64  # sides of sizes chosen for "auto" edits: a multiple every common pipeline accepts


@dataclass(frozen=True)
class SizeRules:
    model: str
    listed: tuple[tuple[int, int], ...]
    max_pixels: int
    max_side: int
    min_side: int

    @classmethod
    def for_card(cls, card: ModelCard, limits: LimitSettings) -> SizeRules:
        max_pixels = min(card.limits.max_image_pixels or limits.max_generated_image_pixels, limits.max_image_pixels)
        max_side = min(card.limits.max_image_side or limits.max_image_side, limits.max_image_side)
        listed = tuple(_parse(s) for s in card.capabilities.sizes)
        return cls(card.id, listed, max_pixels, max_side, limits.min_generated_image_side)

    def describe(self) -> str:
        if self.listed:
            return "these sizes: " + ", ".join(f"{w}x{h}" for w, h in self.listed) + " (or 'auto')"
        side = _round_down(math.isqrt(self.max_pixels), AUTO_MULTIPLE)
        return (
            f"any WxH with sides from {self.min_side} to {self.max_side} pixels and at most "
            f"{self.max_pixels} pixels in all (e.g. {side}x{side}), or 'auto'"
        )

    def check(self, width: int, height: int) -> tuple[int, int]:
        ok = (width, height) in self.listed if self.listed else self._within(width, height)
        if not ok:
            raise InvalidRequestError(
                f"The model '{self.model}' cannot make {width}x{height} images. It makes {self.describe()}.",
                param="size",
                code="unsupported_size",
            )
        return width, height

    def _within(self, width: int, height: int) -> bool:
        return (
            self.min_side <= width <= self.max_side
            and self.min_side <= height <= self.max_side
            and width * height <= self.max_pixels
        )

    def default(self) -> tuple[int, int]:
        if self.listed:
            return self.listed[0]
        side = min(DEFAULT_SIDE, self.max_side, _round_down(math.isqrt(self.max_pixels), AUTO_MULTIPLE))
        return side, side

    def for_input(self, width: int, height: int) -> tuple[int, int]:
        """``auto`` for an edit: the listed size closest in shape, or the input's shape within the limits."""
        if self.listed:
            aspect = math.log(width / height)
            return min(
                self.listed,
                key=lambda s: (abs(math.log(s[0] / s[1]) - aspect), abs(math.log(s[0] * s[1] / (width * height)))),
            )
        scale = min(1.0, math.sqrt(self.max_pixels / (width * height)), self.max_side / max(width, height))
        w, h = (max(self.min_side, _round_down(round(v * scale), AUTO_MULTIPLE)) for v in (width, height))
        if w * h > self.max_pixels:  # a thin image: its short side was raised, so the long one must give
            if w >= h:
                w = max(self.min_side, _round_down(self.max_pixels // h, AUTO_MULTIPLE))
            else:
                h = max(self.min_side, _round_down(self.max_pixels // w, AUTO_MULTIPLE))
        return w, h


def parse_size(value: str | None) -> tuple[int, int] | None:
    """``"1024x1024"`` -> (1024, 1024); None or "auto" -> None; anything else a 400."""
    if value is None or value.strip().lower() == "auto":
        return None
    m = _SIZE.match(value)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise InvalidRequestError(
            f"size '{clip(value)}' is not a size; write it as 'WIDTHxHEIGHT' (e.g. '1024x1024') or 'auto'.",
            param="size",
            code="invalid_size",
        )
    return int(m.group(1)), int(m.group(2))


def _parse(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _round_down(value: int, multiple: int) -> int:
    return max(multiple, value // multiple * multiple)
