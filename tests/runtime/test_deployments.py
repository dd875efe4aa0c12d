"""Deployments on real tiny models: admission, replicas, idle unload, LRU eviction, freed memory."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from mmserve.cards import ModelCard
from mmserve.catalog.catalog import Catalog
from mmserve.engines.base import Engine
from mmserve.engines.types import ChatInput, ChatMessage, SamplingParams
from mmserve.errors import OverloadedError
from mmserve.metrics import Metrics
from mmserve.runtime.replica import Replica
from mmserve.runtime.runtime import Runtime
from mmserve.settings import Settings
from tests.helpers.gc_watch import full_collections


def _card(mid: str, **deployment: object) -> ModelCard:
    return ModelCard.model_validate(
        {
            "id": mid,
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "limits": {"max_output_tokens": 8},
            "deployment": deployment,
        }
    )


def _runtime(data_dir: Path, *cards: ModelCard, **settings: object) -> Runtime:
    s = Settings(data_dir=data_dir, **settings)  # type: ignore[arg-type]
    return Runtime(Catalog(cards, base_dir=data_dir), s, metrics=Metrics())


async def _ask(rt: Runtime, mid: str) -> str:
    dep = rt.deployments[mid]
    async with dep.acquire() as engine:
        req = ChatInput([ChatMessage("user", "Hello")], SamplingParams(max_tokens=3, temperature=0))
        return "".join([d.text async for d in engine.generate(req)])  # type: ignore[attr-defined]


async def test_queue_bound_gives_503_with_retry_after(data_dir: Path) -> None:
    rt = _runtime(data_dir, _card("q", max_concurrency=1, max_queue=1))
    dep = rt.deployments["q"]
    async with dep.acquire():
        waiter = asyncio.create_task(_ask(rt, "q"))  # takes the one queue place
        await asyncio.sleep(0.05)
        assert dep.queue_depth == 1
        with pytest.raises(OverloadedError) as e:
            async with dep.acquire():
                pass
        assert e.value.status_code == 503 and e.value.headers["Retry-After"]
    assert await waiter  # the queued request is served once the slot frees
    await rt.stop()


async def test_a_kept_model_reads_loading_from_the_start_until_it_is_loaded(data_dir: Path) -> None:
    """Never "idle" while the start imports the libraries before its load (/health and /ready show it)."""
    rt = _runtime(data_dir, _card("k", mode="dedicated"))
    dep = rt.deployments["k"]
    await rt.start(background=True)
    seen = {dep.state}  # before the start's task first runs
    while not rt.started:
        seen.add(dep.state)
        await asyncio.sleep(0.002)
    assert "loading" in seen and seen <= {"loading", "loaded"}  # loaded may come before the start's end
    assert dep.state == "loaded"
    await rt.stop()


async def test_dedicated_replicas_load_at_start_and_share_load(data_dir: Path) -> None:
    rt = _runtime(data_dir, _card("r", mode="dedicated", replicas=2, max_concurrency=1))
    await rt.start()
    dep = rt.deployments["r"]
    assert dep.loaded_replicas == 2
    used: set[int] = set()

    async def hold() -> None:
        async with dep.acquire():
            used.update(r.index for r in dep.replicas if r.active)
            await asyncio.sleep(0.05)

    await asyncio.gather(hold(), hold())
    assert used == {0, 1}
    assert await rt.unload_idle() == []  # dedicated: never idle-unloaded
    await rt.stop()


async def test_serverless_idle_unload_frees_the_model_and_reloads(data_dir: Path) -> None:
    rt = _runtime(data_dir, _card("s", idle_unload_s=0.1))
    dep = rt.deployments["s"]
    assert dep.state == "idle"
    first = await _ask(rt, "s")
    assert dep.state == "loaded"
    model_ref = weakref.ref(dep.engine.model)  # type: ignore[union-attr]
    await asyncio.sleep(0.15)
    assert await rt.unload_idle() == ["s"]
    gc.collect()
    assert dep.state == "idle" and model_ref() is None  # no reference left: the memory is freed
    assert await _ask(rt, "s") == first  # reloads on the next request
    cold = rt.metrics.cold_starts.labels("s")._value.get()  # type: ignore[union-attr]
    assert cold == 2
    await rt.stop()


async def test_a_background_load_reads_loading_at_once_and_loads_every_replica(data_dir: Path) -> None:
    rt = _runtime(data_dir, _card("bg", replicas=2))
    dep = rt.deployments["bg"]
    task = dep.load_in_background()
    assert dep.state == "loading"  # before the event loop ran anything: an admin's load shows at once
    await task
    assert dep.state == "loaded" and dep.loaded_replicas == 2
    await rt.stop()


async def test_memory_budget_evicts_least_recently_used(data_dir: Path) -> None:
    cards = [_card(m) for m in ("a", "b", "c")]
    probe = _runtime(data_dir, cards[0])
    await _ask(probe, "a")
    one = probe.deployments["a"].memory_bytes
    assert one
    await probe.stop()
    rt = _runtime(data_dir, *cards, memory_budget_gb=2.5 * one / 1024**3)  # room for two
    await _ask(rt, "a")
    await _ask(rt, "b")
    await _ask(rt, "a")  # b is now the least recently used
    await _ask(rt, "c")
    loaded = {m for m, d in rt.deployments.items() if d.loaded_replicas}
    assert loaded == {"a", "c"}
    assert rt.metrics.unloads.labels("b", "evicted")._value.get() == 1  # type: ignore[union-attr]
    await rt.stop()


async def test_budget_refuses_when_nothing_can_be_evicted(data_dir: Path) -> None:
    cards = [_card("x", mode="dedicated"), _card("y")]
    rt = _runtime(data_dir, *cards, memory_budget_gb=1e-9)
    with pytest.raises(OverloadedError, match="memory"):
        await _ask(rt, "y")
    await rt.stop()


async def test_unload_never_takes_a_replica_that_is_serving(data_dir: Path) -> None:
    """An idle check saw no request, then one arrived on the second replica while the first unloaded."""
    rt = _runtime(data_dir, _card("u", replicas=2, max_concurrency=1))
    dep = rt.deployments["u"]
    await dep.load_all()
    first = dep.replicas[0].engine
    assert first is not None
    closing = asyncio.Event()
    real_aclose = first.aclose

    async def slow_aclose() -> None:  # unloading takes a while (a real engine frees memory)
        closing.set()
        await asyncio.sleep(0.05)
        await real_aclose()

    first.aclose = slow_aclose  # type: ignore[method-assign]
    unloading = asyncio.create_task(dep.unload("idle"))
    await closing.wait()
    async with dep.acquire() as engine:  # picks replica 1, the only one loaded now
        await asyncio.sleep(0.1)  # the unload goes on to replica 1 meanwhile
        assert dep.replicas[1].engine is engine, "a replica was unloaded while it served a request"
        req = ChatInput([ChatMessage("user", "Hello")], SamplingParams(max_tokens=3, temperature=0))
        assert [d async for d in engine.generate(req)]  # type: ignore[attr-defined]
    await unloading
    await rt.stop()
    assert dep.loaded_replicas == 0


async def test_a_load_whose_requester_gave_up_still_completes(data_dir: Path) -> None:
    """A client that leaves during a cold start must not throw the load away (its retry would start over)."""
    rt = _runtime(data_dir, _card("c"))
    dep = rt.deployments["c"]
    loads: list[int] = []
    load = dep._load_blocking

    def counted(replica: Replica) -> Engine:
        loads.append(1)
        return load(replica)

    dep._load_blocking = counted  # type: ignore[method-assign]
    first = asyncio.create_task(_ask(rt, "c"))
    while not loads:  # the model is being loaded
        await asyncio.sleep(0.001)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.create_task(_ask(rt, "c"))  # arrives while the first load is still running
    assert await second
    assert dep.state == "loaded"
    assert len(loads) == 1, "the model was loaded twice"
    await rt.stop()


FIRST_START = """
import asyncio, sys
from pathlib import Path
from mmserve.catalog.catalog import Catalog
from mmserve.cards import ModelCard
from mmserve.engines.base import Engine
from mmserve.runtime.runtime import Runtime
from mmserve.settings import Settings

async def main(data_dir: Path) -> None:
    sources = {"a": "demo:text-lm", "b": "demo:vlm", "c": "demo:tool-lm"}
    cards = [ModelCard.model_validate({"id": m, "task": "chat", "engine": "transformers-chat", "source": s})
             for m, s in sources.items()]
    rt = Runtime(Catalog(cards, base_dir=data_dir), Settings(data_dir=data_dir))
    async def first_request(mid: str) -> str:
        async with rt.deployments[mid].acquire():
            return mid
    print(await asyncio.gather(*(first_request(m) for m in sources), return_exceptions=True))
    await rt.stop()

asyncio.run(main(Path(sys.argv[1])))
"""


def test_models_built_and_loaded_at_once_on_a_first_start(tmp_path: Path) -> None:
    """First requests for several models on a fresh server: each is built and loaded, none fails.

    In a fresh process, since the race is in the model libraries' lazy imports.
    """
    done = subprocess.run(
        [sys.executable, "-c", FIRST_START, str(tmp_path)], capture_output=True, text=True, timeout=240, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "['a', 'b', 'c']", done.stdout + done.stderr[-3000:]


async def test_the_libraries_are_imported_and_frozen_before_a_load_whose_garbage_is_then_collected(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start imports every kept model's libraries and freezes them without a collection
    (mmserve.heap.freeze_imports), then loads: what a load leaves in cycles, tensors included, is
    collected before the heap is frozen again, never frozen with the libraries."""
    import torch
    from transformers import PreTrainedModel

    from mmserve.engines.transformers_chat.engine import TransformersChatEngine

    seen: dict[str, object] = {}
    load = TransformersChatEngine.load

    def observed_load(self: TransformersChatEngine) -> None:
        seen["frozen"] = gc.get_freeze_count()
        seen["libraries"] = PreTrainedModel.__module__ in sys.modules
        leftover = Node(torch.zeros(1000))  # a load's garbage: a cycle holding a tensor
        seen["leftover"] = weakref.ref(leftover.tensor)
        del leftover
        load(self)

    monkeypatch.setattr(TransformersChatEngine, "load", observed_load)
    gc.unfreeze()
    try:
        rt = _runtime(data_dir, _card("kept", mode="dedicated"))
        await rt.start()
        assert rt.deployments["kept"].loaded_replicas == 1
        assert seen["frozen"] and seen["libraries"]
        leftover = seen["leftover"]
        assert isinstance(leftover, weakref.ref) and leftover() is None
        await rt.stop()
    finally:
        gc.unfreeze()


class Node:
    """A tensor in a reference cycle: only the cyclic collector frees it."""

    def __init__(self, tensor: object) -> None:
        self.tensor = tensor
        self.me = self


async def test_loaded_models_are_frozen_and_an_unload_still_frees_one_held_in_a_cycle(data_dir: Path) -> None:
    """The start-up loads end with the heap frozen (mmserve.heap); a model loaded later joins it; unloaded,
    a model that only a reference cycle through the frozen heap still holds is freed all the same."""
    gc.unfreeze()
    try:
        rt = _runtime(data_dir, _card("kept", mode="dedicated"), _card("later", idle_unload_s=0.1))
        await rt.start()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        await _ask(rt, "later")  # loaded on demand, after start-up
        dep = rt.deployments["later"]
        model = dep.engine.model  # type: ignore[union-attr]
        model.test_cycle = [model]  # a young list and the frozen model hold each other
        model_ref = weakref.ref(model)
        del model
        gc.collect()
        assert model_ref() is not None  # still the engine's
        await asyncio.sleep(0.15)
        assert await rt.unload_idle() == ["later"]
        assert model_ref() is None  # the unload's collection walked the frozen heap too
        assert gc.get_freeze_count() > 0  # and froze the rest again
        await rt.stop()
    finally:
        gc.unfreeze()


async def test_a_stop_frees_every_model_with_one_walk_of_the_heap(data_dir: Path) -> None:
    """Each unload asks for a full collection (mmserve.heap.release); a stop unloads every model at
    once, and one collection at its end frees them all (three in a row took 1.8 s on the demo server)."""
    gc.unfreeze()
    try:
        rt = _runtime(data_dir, *(_card(m, mode="dedicated") for m in "abc"))
        await rt.start()
        models = [weakref.ref(rt.deployments[m].engine.model) for m in "abc"]  # type: ignore[union-attr]
        with full_collections() as full:
            await rt.stop()
        assert full == [2]
        assert all(m() is None for m in models)
    finally:
        gc.unfreeze()
