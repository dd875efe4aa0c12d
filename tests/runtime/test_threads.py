"""torch's intra-op threads: shared by the catalog's torch engines instead of oversubscribing the cores.

torch keeps one intra-op thread count per process (set in one thread, it holds in all), and
each thread that computes gets its own OpenMP team of that size: N engines computing at once
on C cores run N x threads threads. The runtime divides the cores among the catalog's torch
replicas (issue 18: 2 threads each made requests stall for seconds under contention).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmserve.cards import ModelCard
from mmserve.catalog.catalog import Catalog
from mmserve.runtime.runtime import Runtime
from mmserve.settings import Settings


def _card(mid: str, engine: str, replicas: int = 1) -> ModelCard:
    return ModelCard.model_validate(
        {
            "id": mid,
            "task": "chat" if "chat" in engine else "speech",
            "engine": engine,
            "deployment": {"replicas": replicas},
        }
    )


def _runtime(data_dir: Path, *cards: ModelCard, **settings: object) -> Runtime:
    return Runtime(Catalog(cards, base_dir=data_dir), Settings(data_dir=data_dir, load_on_start=False, **settings))  # type: ignore[arg-type]


def test_the_cores_are_divided_among_the_torch_replicas(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, no_env: None
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(12)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cards = [_card("a", "transformers-chat", replicas=2), _card("b", "transformers-tts"), _card("c", "espeak-ng")]
    assert _runtime(data_dir, *cards).torch_threads() == 4  # 12 cores, 3 torch replicas (espeak-ng is not torch)
    assert _runtime(data_dir, _card("c", "espeak-ng")).torch_threads() is None  # no torch engine: left alone
    assert _runtime(data_dir, *[_card(f"m{i}", "transformers-chat") for i in range(20)]).torch_threads() == 1
    assert _runtime(data_dir, *cards, torch_threads=3).torch_threads() == 3  # MMSERVE_TORCH_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the operator's OpenMP setting, honoured as torch does
    assert _runtime(data_dir, *cards).torch_threads() == 2
    assert _runtime(data_dir, *cards, torch_threads=3).torch_threads() == 3  # mmserve's own setting wins
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert _runtime(data_dir, *cards).torch_threads() == 4


def test_a_started_runtime_sets_torch_threads(data_dir: Path) -> None:
    # in a fresh process: the count is process-wide and would leak into other tests
    script = textwrap.dedent(
        f"""
        import asyncio, torch
        from mmserve.cards import ModelCard
        from mmserve.catalog.catalog import Catalog
        from mmserve.runtime.runtime import Runtime
        from mmserve.settings import Settings
        card = ModelCard.model_validate({{"id": "a", "task": "chat", "engine": "transformers-chat"}})
        settings = Settings(data_dir={str(data_dir)!r}, load_on_start=False, torch_threads=3)
        rt = Runtime(Catalog([card], base_dir=settings.data_dir), settings)
        before = torch.get_num_threads()
        asyncio.run(rt.start())
        print(before, torch.get_num_threads())
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["1", "3"]
