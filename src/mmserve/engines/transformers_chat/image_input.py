"""What a transformers processor does with images: its resize (:func:`processor_input_size`),
its placeholder tokens, which user text may not contain (:func:`refuse_placeholder_tokens`), and
how many of an image-token count are video frames' (:func:`video_share`).

Processors describe their resize with a ``size`` dict (``SizeDict`` in transformers 5) whose
keys mean different things per family, so only the shapes known here are translated; an
unknown one gives ``None`` (images are then only bounded, and the processor resizes them).
When in doubt the answer keeps more pixels, never fewer, than the processor uses.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

from mmserve.engines.types import ChatMessage
from mmserve.errors import InvalidRequestError
from mmserve.media.image.decode import ImageInputSize


def processor_input_size(image_processor: Any) -> ImageInputSize | None:
    size = _input_size(image_processor)
    if size is None:
        return None
    return replace(size, resample=_resample(image_processor))


# Pillow's smoothing filters (LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING): each averages what it
# shrinks. NEAREST (0) does not; a processor that uses it gets Lanczos's downscale first.
_SMOOTHING = frozenset((1, 2, 3, 4, 5))


def _resample(image_processor: Any) -> int | None:
    value = getattr(image_processor, "resample", None)  # an int, or transformers' PILImageResampling (an IntEnum)
    return int(value) if isinstance(value, int) and value in _SMOOTHING else None


def _input_size(image_processor: Any) -> ImageInputSize | None:
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


def refuse_placeholder_tokens(messages: list[ChatMessage], processor: Any, *, skip_roles: Collection[str] = ()) -> None:
    """Text must not contain the processor's media placeholders (``<image>``, ...).

    The processor expands every placeholder in the prompt into an image's tokens; one typed
    in a message would claim an image slot (the processor then fails, or shifts the images).
    ``skip_roles``: messages whose placeholders are escaped instead (see :mod:`.typed_specials`).
    """
    tokens = [t for t in (getattr(processor, a, None) for a in _PLACEHOLDERS) if isinstance(t, str) and t]
    if not tokens:
        return
    for i, m in enumerate(messages):
        if m.role in skip_roles:
            continue
        if isinstance(m.content, str):
            texts = [(f"messages[{i}].content", m.content)]
        else:
            texts = [(f"messages[{i}].content[{j}].text", p.text) for j, p in enumerate(m.content) if p.type == "text"]
        for param, text in texts:
            for token in tokens:
                if token in text:
                    raise InvalidRequestError(
                        f"The text contains '{token}', which this model reserves for the media it is sent; "
                        "remove it (send images as image_url parts).",
                        param=param,
                        code="reserved_token",
                    )


def video_share(processor: Any, images: list[Any], frames: list[bool], image_tokens: int) -> int:
    """Of ``image_tokens`` (all images of a prompt, ``frames[i]``: image i is a video frame), the frames' tokens.

    Exact when the processor says how many tokens each image becomes (``_get_num_multimodal_tokens``,
    what vLLM asks it too); else shared out by count (exact when every image costs the same,
    as in LLaVA 1.5).
    """
    count = getattr(processor, "_get_num_multimodal_tokens", None)
    if callable(count):
        try:
            per = list(count(image_sizes=[(im.height, im.width) for im in images]).num_image_tokens)
        except Exception:  # a processor whose helper needs more arguments: fall back to the share
            per = []
        if len(per) == len(images) and sum(per) == image_tokens:
            return int(sum(n for n, frame in zip(per, frames, strict=True) if frame))
    return round(image_tokens * sum(frames) / max(1, len(images)))


_PLACEHOLDERS = ("image_token", "video_token", "audio_token")
