"""build_demo_model under concurrency: deployments (threads) asking for the same demo model at once."""

from __future__ import annotations

import threading
from pathlib import Path

from mmserve.catalog.builders import build_demo_model


def test_concurrent_builds_of_one_model_all_get_it(tmp_path: Path) -> None:
    # two serverless cards on "demo:image" loading at once: one build, or two that do not collide
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(build_demo_model("image", tmp_path))
        except BaseException as e:  # collected: a thread's exception is not the test's
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [tmp_path / "image"] * 3
    assert (tmp_path / "image" / "model_index.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image"]  # no temporary folder left behind
