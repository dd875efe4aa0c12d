"""The transformers chat engine on the tiny Qwen2-Audio: audio parts through the processor, counted as audio tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.engines.transformers_chat.audio_input import resample
from mmserve.engines.transformers_chat.engine import TransformersChatEngine
from mmserve.engines.types import ChatDelta, ChatInput, ChatMessage, ChatPart, SamplingParams
from mmserve.errors import InvalidRequestError


def test_resample_keeps_the_signal() -> None:
    t = np.arange(8000) / 8000
    low = np.sin(2 * np.pi * 100 * t).astype(np.float32)
    up = resample((low, 8000), 16000)
    assert up.dtype == np.float32 and len(up) == 16000
    assert np.allclose(up[::2], low, atol=1e-6)
    same = resample((low, 8000), 8000)
    assert same is low


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> TransformersChatEngine:
    card = ModelCard(
        id="tiny-audio",
        task="chat",
        engine="transformers-chat",
        source="demo:audio-lm",
        capabilities={"audio_input": True},
    )
    eng = TransformersChatEngine(card, source=build_demo_model("audio-lm", models_dir), device="cpu")
    eng.load()
    return eng


async def _first(engine: TransformersChatEngine, parts: list[ChatPart]) -> list[ChatDelta]:
    inp = ChatInput([ChatMessage("user", parts)], SamplingParams(max_tokens=4, temperature=0))
    return [d async for d in engine.generate(inp)]


def test_audio_parts_become_audio_tokens(engine: TransformersChatEngine) -> None:
    assert engine.audio and not engine.vision
    clip = (0.1 * np.random.default_rng(0).standard_normal(16000 * 5)).astype(np.float32)
    deltas = asyncio.run(_first(engine, [ChatPart("text", text="What is said?"), ChatPart("audio", audio=clip)]))
    assert deltas[0].audio_tokens == 125  # 5 s: 500 mel frames -> 250 -> 125
    assert deltas[0].prompt_tokens is not None and deltas[0].prompt_tokens > 125
    assert deltas[-1].finish_reason in ("stop", "length")
    # the same clip at 8 kHz is resampled to what the feature extractor takes
    low = clip[::2].copy()
    deltas = asyncio.run(_first(engine, [ChatPart("audio", audio=low, sample_rate=8000)]))
    assert deltas[0].audio_tokens == 125


def test_images_to_an_audio_model_are_refused(engine: TransformersChatEngine) -> None:
    from PIL import Image

    with pytest.raises(InvalidRequestError, match="does not accept images"):
        asyncio.run(_first(engine, [ChatPart("image", image=Image.new("RGB", (32, 32)))]))


def test_typed_audio_placeholders_are_plain_text(engine: TransformersChatEngine) -> None:
    # a user typing the placeholder gets it read as text (issue 18, item 11), never as audio
    deltas = asyncio.run(_first(engine, [ChatPart("text", text="say <|AUDIO|> please")]))
    assert deltas[0].audio_tokens == 0
    assert "AUDIO" in (deltas[0].prompt_text or "")  # kept, as text


def test_typed_audio_placeholders_in_a_system_message_are_refused(engine: TransformersChatEngine) -> None:
    system = ChatMessage("system", "you hear <|AUDIO|>")
    inp = ChatInput([system, ChatMessage("user", "hi")], SamplingParams(max_tokens=4, temperature=0))

    async def run() -> None:
        async for _ in engine.generate(inp):
            pass

    with pytest.raises(InvalidRequestError) as e:
        asyncio.run(run())
    assert e.value.code == "reserved_token"
