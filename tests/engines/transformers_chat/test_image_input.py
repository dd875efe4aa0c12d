"""How engines report their processor's image size to the media layer."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.catalog.builders.vlm import IMAGE_SIZE
from mmserve.engines.transformers_chat.engine import TransformersChatEngine
from mmserve.engines.transformers_chat.image_input import processor_input_size
from mmserve.media.image.decode import ImageInputSize


def test_known_processor_families() -> None:
    from transformers import CLIPImageProcessorPil, Qwen2VLImageProcessorPil, SiglipImageProcessorPil

    bicubic = int(Image.Resampling.BICUBIC)
    clip = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    assert processor_input_size(clip) == ImageInputSize(shortest_edge=336, resample=bicubic)
    assert processor_input_size(SiglipImageProcessorPil()) == ImageInputSize(height=224, width=224, resample=bicubic)
    qwen = Qwen2VLImageProcessorPil()
    # pixels, not a side
    assert processor_input_size(qwen) == ImageInputSize(max_pixels=qwen.size.longest_edge, resample=bicubic)
    clip.resample = Image.Resampling.NEAREST  # it does not smooth: the media layer's downscale keeps Lanczos
    assert processor_input_size(clip) == ImageInputSize(shortest_edge=336)
    clip.do_resize = False
    assert processor_input_size(clip) is None


class _Plain:
    def __init__(self, size: object) -> None:
        self.size = size


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ({"longest_edge": 1456}, ImageInputSize(longest_edge=1456)),  # Idefics3 / SmolVLM
        ({"shortest_edge": 378, "longest_edge": 980}, ImageInputSize(shortest_edge=378)),
        ({"max_pixels": 1_000_000}, ImageInputSize(max_pixels=1_000_000)),
        ({"height": 0, "width": 384}, None),
        ({}, None),
        (None, None),
    ],
)
def test_size_dicts(size: object, expected: ImageInputSize | None) -> None:
    assert processor_input_size(_Plain(size)) == expected
    assert processor_input_size(None) is None


def _card(**limits: object) -> ModelCard:
    return ModelCard.model_validate(
        {"id": "v", "task": "chat", "engine": "transformers-chat", "capabilities": {"vision": True}, "limits": limits}
    )


def test_the_transformers_engine_reads_its_processor(models_dir: Path) -> None:
    source = build_demo_model("vlm", models_dir)
    engine = TransformersChatEngine(_card(), source=source, device="cpu")
    assert engine.image_input_size() is None  # not loaded: nothing known
    engine.load()
    try:
        assert engine.image_input_size() == ImageInputSize(shortest_edge=IMAGE_SIZE, resample=Image.Resampling.BICUBIC)
    finally:
        engine.unload()
    declared = TransformersChatEngine(_card(image_input_side=100), source=source, device="cpu")
    assert declared.image_input_size() == ImageInputSize(shortest_edge=100)  # the card wins, even cold
