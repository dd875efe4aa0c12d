"""Read how a transformers image processor resizes images, as an :class:`ImageInputSize`.

Processors describe their resize with a ``size`` dict (``SizeDict`` in transformers 5) whose
keys mean different things per family, so only the shapes known here are translated; an
unknown one gives ``None`` (images are then only bounded, and the processor resizes them).
When in doubt the answer keeps more pixels, never fewer, than the processor uses.
"""

from __future__ import annotations

from typing import Any

from mmserve.engines.types import ImageInputSize


def processor_input_size(image_processor: Any) -> ImageInputSize | None:
    if image_processor is None or getattr(image_processor, "do_resize", True) is False:
        return None
    size = getattr(image_processor, "size", None)
    if size is None:
        return None

    def get(key: str) -> int | None:
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        return int(value) if isinstance(value, int | float) and value > 0 else None

    if getattr(image_processor, "merge_size", None) is not None:
        # Qwen2-VL family: size = {shortest_edge: min_pixels, longest_edge: max_pixels}
        pixels = get("max_pixels") or get("longest_edge")
        return ImageInputSize(max_pixels=pixels) if pixels else None
    height, width = get("height"), get("width")
    if height and width:
        return ImageInputSize(height=height, width=width)
    shortest, longest, pixels = get("shortest_edge"), get("longest_edge"), get("max_pixels")
    if shortest:
        # shortest_edge (+ optional longest_edge cap): keeping the short side at `shortest`
        # keeps at least what the processor keeps.
        return ImageInputSize(shortest_edge=shortest)
    if longest:
        return ImageInputSize(longest_edge=longest)
    if pixels:
        return ImageInputSize(max_pixels=pixels)
    return None
