"""Continuous batching in the transformers chat engine: rows join and leave a running batch, each as if alone."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.chatformat.grammar import OutputConstraint
from mmserve.engines.transformers_chat.engine import TransformersChatEngine
from mmserve.engines.types import ChatDelta, ChatInput, ChatMessage, ChatPart, SamplingParams
from mmserve.errors import EngineError
from tests.helpers.models import build_short_context_gpt2

pytestmark = pytest.mark.anyio


def _engine(source: Path, *, vision: bool = False, **options: Any) -> Iterator[TransformersChatEngine]:
    card = ModelCard.model_validate(
        {
            "id": "batched",
            "task": "chat",
            "engine": "transformers-chat",
            "options": options,
            "capabilities": {"vision": vision, "context_length": 512},
            "limits": {"max_output_tokens": 256},
        }
    )
    engine = TransformersChatEngine(card, source=source, device="cpu")
    engine.load()
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def text_engine(models_dir: Path) -> Iterator[TransformersChatEngine]:
    yield from _engine(build_demo_model("text-lm", models_dir))


@pytest.fixture(scope="module")
def vlm_engine(models_dir: Path) -> Iterator[TransformersChatEngine]:
    yield from _engine(build_demo_model("vlm", models_dir), vision=True)


def _ask(text: str, *, image: Image.Image | None = None, **params: Any) -> ChatInput:
    content: str | list[ChatPart] = text
    if image is not None:
        content = [ChatPart("text", text=text), ChatPart("image", image=image)]
    return ChatInput(messages=[ChatMessage("user", content)], params=SamplingParams(**params))


@dataclass
class Result:
    text: str = ""
    deltas: int = 0
    finish_reason: str | None = None
    completion_tokens: int = 0
    prompt_tokens: int | None = None
    error: BaseException | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)  # set after a few deltas (or at the end)


async def _run(gen: AsyncGenerator[ChatDelta, None], into: Result, *, started_after: int = 3) -> Result:
    try:
        async for d in gen:
            into.deltas += 1
            if d.prompt_tokens is not None:
                into.prompt_tokens = d.prompt_tokens
            into.text += d.text
            into.completion_tokens = d.completion_tokens
            into.finish_reason = d.finish_reason or into.finish_reason
            if into.deltas >= started_after:
                into.started.set()
    except Exception as e:
        into.error = e
    finally:
        into.started.set()
    return into


async def _alone(engine: TransformersChatEngine, requests: list[ChatInput]) -> list[Result]:
    return [await _run(engine.generate(r), Result()) for r in requests]


async def _staggered(engine: TransformersChatEngine, requests: list[ChatInput]) -> list[Result]:
    """Each request starts once the one before it has streamed a few tokens: every later row joins a running batch."""
    results = [Result() for _ in requests]
    tasks = []
    for i, r in enumerate(requests):
        if i:
            await results[i - 1].started.wait()
        tasks.append(asyncio.create_task(_run(engine.generate(r), results[i])))
    await asyncio.gather(*tasks)
    return results


@contextmanager
def _admitted_together(engine: TransformersChatEngine, count: int) -> Iterator[None]:
    """The decode loop admits nothing until ``count`` rows wait: one turn admits them all, whatever the timing."""
    loop = engine._loop
    assert loop is not None
    admit = loop._admit

    def held() -> list[Any]:  # runs holding the loop's condition, as _admit does; holds only the first turn
        loop._admit = admit  # type: ignore[method-assign]
        loop._cv.wait_for(lambda: len(loop._inbox) >= count, timeout=30)
        return admit()

    loop._admit = held  # type: ignore[method-assign]
    try:
        yield
    finally:
        loop._admit = admit  # type: ignore[method-assign]


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.002)


def _same(a: list[Result], b: list[Result]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.error is None and y.error is None
        assert (x.text, x.finish_reason, x.completion_tokens) == (y.text, y.finish_reason, y.completion_tokens)


TEXTS = [
    _ask("Tell me a story.", max_tokens=48, temperature=0, ignore_eos=True),  # runs while the others join
    _ask("Hi", max_tokens=20, temperature=0),
    _ask("What is the capital of France? Answer in one word please.", max_tokens=30, temperature=0),
    _ask("Count to ten.", max_tokens=12, temperature=0, stop=["e"]),
    _ask("Hello there", max_tokens=25, temperature=0, logprobs=True, top_logprobs=2),
]


async def test_greedy_text_is_the_same_batched_and_alone(text_engine: TransformersChatEngine) -> None:
    loop = text_engine._loop
    assert loop is not None
    alone = await _alone(text_engine, TEXTS)
    peak_before = loop.stats.peak
    batched = await _staggered(text_engine, TEXTS)
    _same(alone, batched)
    assert peak_before == 1 and loop.stats.peak >= 3  # really decoded together
    await _until(lambda: text_engine.batch_size() == 0)  # the last row leaves right after its last token


async def test_greedy_images_and_text_mix_in_one_batch(vlm_engine: TransformersChatEngine) -> None:
    red, blue = Image.new("RGB", (56, 56), (220, 30, 30)), Image.new("RGB", (80, 60), (20, 40, 200))
    requests = [
        _ask("Describe this.", image=red, max_tokens=40, temperature=0, ignore_eos=True),
        _ask("Just text, no picture.", max_tokens=24, temperature=0),
        _ask("And this one?", image=blue, max_tokens=30, temperature=0),
        _ask("Compare", image=red, max_tokens=16, temperature=0, top_p=0.5),
    ]
    alone = await _alone(vlm_engine, requests)
    batched = await _staggered(vlm_engine, requests)
    _same(alone, batched)
    assert alone[0].prompt_tokens and alone[1].prompt_tokens and alone[0].prompt_tokens > alone[1].prompt_tokens
    assert vlm_engine._loop is not None and vlm_engine._loop.stats.peak >= 3


async def test_rows_arriving_together_are_prefilled_together(vlm_engine: TransformersChatEngine) -> None:
    red, blue = Image.new("RGB", (56, 56), (220, 30, 30)), Image.new("RGB", (90, 40), (20, 40, 200))
    requests = [
        _ask("Describe this picture in detail.", image=red, max_tokens=12, temperature=0),
        _ask("And this?", image=blue, max_tokens=20, temperature=0),
        _ask("No picture: a plain question for the model.", max_tokens=16, temperature=0),
        _ask("Hi", max_tokens=16, temperature=0),
        _ask("Seeded", image=blue, max_tokens=16, temperature=0.9, seed=11, logprobs=True),
    ]
    alone = await _alone(vlm_engine, requests)
    assert vlm_engine._loop is not None
    before = vlm_engine._loop.stats.prefilled_together
    with _admitted_together(vlm_engine, len(requests)):
        together = await asyncio.gather(*(_run(vlm_engine.generate(r), Result()) for r in requests))
    _same(alone, list(together))
    assert vlm_engine._loop.stats.prefilled_together - before >= 2  # left-padded, in one forward


@pytest.mark.parametrize("top_p", [0.9, 1.0])  # 1.0: sampled in one group with the unseeded rows beside it
async def test_seeded_sampling_is_reproducible_whatever_runs_beside_it(
    text_engine: TransformersChatEngine, top_p: float
) -> None:
    seeded = _ask("Tell me something.", max_tokens=30, temperature=1.0, top_p=top_p, seed=1234, ignore_eos=True)
    others = [_ask("Other things", max_tokens=40, temperature=1.2), _ask("More", max_tokens=10, temperature=0.7)]
    (first,) = await _alone(text_engine, [seeded])
    second = (await _staggered(text_engine, [others[0], seeded, others[1]]))[1]
    third = (await _staggered(text_engine, [seeded, *others]))[0]
    assert first.text and first.text == second.text == third.text
    different = (await _alone(text_engine, [_ask("Tell me something.", max_tokens=30, seed=99)]))[0]
    assert different.text != first.text


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"enum": ["Paris", "Rome", "Oslo"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 9},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}


def _constrained(text: str, **params: Any) -> ChatInput:
    request = _ask(text, **params)
    request.constraint = OutputConstraint(json_schema=SCHEMA)
    return request


async def test_each_row_keeps_its_own_grammar(text_engine: TransformersChatEngine) -> None:
    # constrained and free rows in one batch: each row's matcher masks its own logits only
    requests = [
        _ask("Tell me a story.", max_tokens=40, temperature=0, ignore_eos=True),
        _constrained("Weather?", max_tokens=60, temperature=0),
        _ask("Hi", max_tokens=24, temperature=0),
        _constrained("Where to?", max_tokens=60, temperature=1.0, seed=7),
    ]
    alone = await _alone(text_engine, requests)
    batched = await _staggered(text_engine, requests)
    _same(alone, batched)
    for r in (batched[1], batched[3]):
        assert r.finish_reason == "stop"
        jsonschema.validate(json.loads(r.text), SCHEMA)
    assert not batched[0].text.startswith("{")  # the free row was not held to another row's grammar
    assert text_engine._loop is not None and text_engine._loop.stats.peak >= 3


async def test_a_cancelled_row_leaves_the_batch_and_the_others_go_on(text_engine: TransformersChatEngine) -> None:
    keep = _ask("Keep going", max_tokens=120, temperature=0, ignore_eos=True)
    (alone,) = await _alone(text_engine, [keep])
    leaver = text_engine.generate(_ask("I will leave", max_tokens=200, temperature=0, ignore_eos=True))
    assert (await anext(leaver)).prompt_tokens  # joined
    kept = asyncio.create_task(_run(text_engine.generate(keep), Result()))
    await _until(lambda: text_engine.batch_size() == 2)
    await anext(leaver)
    await leaver.aclose()  # the client left
    await _until(lambda: text_engine.batch_size() != 2)
    assert not kept.done()  # the leaver left at once, not when the batch ended
    _same([alone], [await kept])


@pytest.fixture(scope="module")
def failing_engine(models_dir: Path) -> Iterator[TransformersChatEngine]:
    yield from _engine(build_demo_model("text-lm", models_dir), logits_processors=["tests.helpers.faulty:FailsMidway"])


async def test_a_row_whose_processor_fails_fails_alone(failing_engine: TransformersChatEngine) -> None:
    ok = [_ask("Tell me a story.", max_tokens=30, temperature=0), _ask("Hi", max_tokens=20, temperature=0.8, seed=5)]
    alone = await _alone(failing_engine, ok)
    runs = await _staggered(failing_engine, [ok[0], _ask("FAIL please", max_tokens=30, temperature=0), ok[1]])
    assert isinstance(runs[1].error, EngineError) and runs[1].completion_tokens == 3  # it had started
    _same(alone, [runs[0], runs[2]])


async def test_tokens_before_a_failure_reach_a_slow_consumer(failing_engine: TransformersChatEngine) -> None:
    # The consumer reads nothing until the row has failed: its three tokens and the failure wait
    # in the queue together. The tokens are still delivered, then the error (as for a fast consumer).
    loop = failing_engine._loop
    assert loop is not None
    decoded = loop.stats.rows_decoded
    stream = failing_engine.generate(_ask("FAIL please", max_tokens=30, temperature=0))
    assert (await anext(stream)).prompt_tokens
    # tokens 2 and 3 decoded, the step for token 4 failed, and the row left the batch
    await _until(lambda: loop.stats.rows_decoded - decoded >= 3 and failing_engine.batch_size() == 0)
    await asyncio.sleep(0.05)  # the event loop takes what the decode thread sent
    got = await anext(stream)
    assert got.completion_tokens == 3 and got.text and got.finish_reason is None
    with pytest.raises(EngineError):
        await anext(stream)


@pytest.fixture(scope="module")
def short_engine(models_dir: Path) -> Iterator[TransformersChatEngine]:
    # A GPT-2 with 24 positions behind a card claiming 512: its forward fails past position 24.
    yield from _engine(build_short_context_gpt2(models_dir / "gpt2-24", positions=24))


async def test_a_row_whose_forward_fails_fails_alone(
    short_engine: TransformersChatEngine, caplog: pytest.LogCaptureFixture
) -> None:
    short = [_ask("a", max_tokens=14, temperature=0), _ask("b", max_tokens=16, temperature=0, seed=3)]
    alone = await _alone(short_engine, short)
    too_long = _ask("Tell me", max_tokens=40, temperature=0, ignore_eos=True)
    runs = await _staggered(short_engine, [too_long, *short])
    assert runs[0].prompt_tokens and runs[0].prompt_tokens < 20
    assert isinstance(runs[0].error, EngineError)  # at position 24, while the short rows were in the batch
    assert "rows one by one" in caplog.text  # found by running the rows of that step alone
    _same(alone, runs[1:])
    assert short_engine._loop is not None and short_engine._loop.stats.peak == 3


async def test_a_row_whose_batched_prefill_fails_fails_alone(
    short_engine: TransformersChatEngine, caplog: pytest.LogCaptureFixture
) -> None:
    short = [_ask("a", max_tokens=10, temperature=0), _ask("b", max_tokens=12, temperature=0)]
    alone = await _alone(short_engine, short)
    too_long = _ask("Tell me a long story about everything", max_tokens=4)  # more than 24 prompt tokens
    with _admitted_together(short_engine, 3):
        runs = await asyncio.gather(*(_run(short_engine.generate(r), Result()) for r in [short[0], too_long, short[1]]))
    assert isinstance(runs[1].error, EngineError)
    _same(alone, [runs[0], runs[2]])
    assert "prefilling its" in caplog.text  # it failed in a group, found by prefilling them one by one


async def test_max_batch_size_bounds_the_batch(models_dir: Path) -> None:
    for engine in _engine(build_demo_model("text-lm", models_dir), max_batch_size=2, max_batch_tokens=1):
        requests = [_ask(f"Question {i}", max_tokens=20, temperature=0, ignore_eos=True) for i in range(5)]
        alone = await _alone(engine, requests)
        together = await asyncio.gather(*(_run(engine.generate(r), Result()) for r in requests))
        _same(alone, list(together))
        assert engine._loop is not None and engine._loop.stats.peak == 2
        assert TransformersChatEngine.default_concurrency(engine.options, "cpu") == 2


async def test_a_prompt_being_prepared_holds_up_no_other_request(
    text_engine: TransformersChatEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # templates and tokenizers run in the engine's preparation threads, never in its decode loop
    gate = threading.Event()
    prepare = text_engine._prepare

    def slow(request: ChatInput) -> Any:
        if request.messages[0].content == "SLOW":
            gate.wait(60)
        return prepare(request)

    monkeypatch.setattr(text_engine, "_prepare", slow)
    slow_one = asyncio.create_task(_run(text_engine.generate(_ask("SLOW", max_tokens=4)), Result()))
    await asyncio.sleep(0.05)
    try:
        quick = await asyncio.wait_for(
            _run(text_engine.generate(_ask("Hi", max_tokens=20, ignore_eos=True)), Result()), 60
        )
        assert quick.error is None and quick.completion_tokens == 20
        assert not slow_one.done()
    finally:
        gate.set()
    assert (await slow_one).error is None


async def test_a_request_whose_client_leaves_while_its_prompt_is_prepared_never_runs(
    text_engine: TransformersChatEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the preparation thread submits the row itself: a client gone by then must not leave it running
    loop = text_engine._loop
    assert loop is not None
    gate, done = threading.Event(), threading.Event()
    prepare = text_engine._row

    def slow(request: ChatInput, send: Any) -> Any:
        gate.wait(60)
        try:
            return prepare(request, send)
        finally:
            done.set()

    monkeypatch.setattr(text_engine, "_row", slow)
    before = loop.stats.prefills
    task = asyncio.create_task(_run(text_engine.generate(_ask("Leave", max_tokens=200, ignore_eos=True)), Result()))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    gate.set()
    await asyncio.to_thread(done.wait, 60)
    await asyncio.sleep(0.2)  # time for the loop to have admitted it, had it not been cancelled
    assert loop.stats.prefills == before and text_engine.batch_size() == 0 and loop.waiting == 0


def test_decoding_steps_of_the_demo_models_pass_a_ready_sdpa_mask(
    text_engine: TransformersChatEngine, vlm_engine: TransformersChatEngine
) -> None:
    # the greedy batched == alone tests above then run on that path; a family whose logits it changes keeps 2-D
    assert text_engine._loop is not None and text_engine._loop.sdpa_mask
    assert vlm_engine._loop is not None and vlm_engine._loop.sdpa_mask
