"""The model's ``generation_config.min_new_tokens`` holds for every row of a batch, as in ``generate()``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.engines.transformers_chat.engine import TransformersChatEngine
from mmserve.engines.types import ChatInput, ChatMessage, SamplingParams

pytestmark = pytest.mark.anyio


def end_at_once(tokenizer: Any, prompt_ids: list[int]) -> Any:
    """A card hook that makes the end of sequence the likeliest token at every step."""

    def boost(input_ids: Any, scores: Any) -> Any:
        scores = scores.clone()
        scores[:, tokenizer.eos_token_id] += 1000.0
        return scores

    return boost


def _engine(source: Path) -> Iterator[TransformersChatEngine]:
    card = ModelCard.model_validate(
        {
            "id": "min-new",
            "task": "chat",
            "engine": "transformers-chat",
            "options": {"logits_processors": [f"{__name__}:end_at_once"]},
            "capabilities": {"context_length": 512},
            "limits": {"max_output_tokens": 64},
        }
    )
    engine = TransformersChatEngine(card, source=source, device="cpu")
    engine.load()
    yield engine
    engine.unload()


def _with_min_new_tokens(source: Path, count: int | None) -> Path:
    path = source / "generation_config.json"
    config = json.loads(path.read_text())
    config.pop("min_new_tokens", None)
    if count is not None:
        config["min_new_tokens"] = count
    path.write_text(json.dumps(config))
    return source


async def _tokens(engine: TransformersChatEngine, text: str, **params: Any) -> tuple[int, str | None]:
    request = ChatInput(messages=[ChatMessage("user", text)], params=SamplingParams(max_tokens=20, **params))
    completion, finish = 0, None
    async for d in engine.generate(request):
        completion, finish = d.completion_tokens, d.finish_reason or finish
    return completion, finish


async def test_rows_end_no_sooner_than_min_new_tokens_alone_and_batched(tmp_path: Path) -> None:
    source = _with_min_new_tokens(build_demo_model("text-lm", tmp_path), 4)
    for engine in _engine(source):
        # the end, boosted, came once 4 tokens were out (it is counted, as vLLM counts it)
        assert await _tokens(engine, "Hi", temperature=0) == (5, "stop")
        together = await asyncio.gather(
            *(_tokens(engine, f"Question {i}", temperature=t, seed=i) for i, t in enumerate([0, 0.8, 1.2]))
        )
        assert together == [(5, "stop")] * 3


async def test_without_min_new_tokens_the_end_may_come_first(tmp_path: Path) -> None:
    source = _with_min_new_tokens(build_demo_model("text-lm", tmp_path), None)
    for engine in _engine(source):
        assert await _tokens(engine, "Hi", temperature=0) == (1, "stop")  # the end of sequence alone


async def test_the_demo_chat_models_never_answer_with_nothing(tmp_path: Path) -> None:
    for kind in ("vlm", "text-lm"):
        config = json.loads((build_demo_model(kind, tmp_path / kind) / "generation_config.json").read_text())
        assert config["min_new_tokens"] == 1 and config["suppress_tokens"]
