"""The frozen heap: collected before it is frozen, skipped by collections after, released on unload."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from mmserve import heap
from tests.helpers.gc_watch import full_collections


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts and ends with nothing frozen and the collector on (and this process not ending)."""
    monkeypatch.setattr(heap, "_ending", False)
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()


def test_freeze_collects_first_and_later_collections_skip_what_it_froze() -> None:
    garbage = weakref.ref(Node())  # a cycle nobody holds: garbage already
    kept = Node()
    frozen_ref = weakref.ref(kept)
    heap.freeze()
    assert gc.get_freeze_count() > 0
    assert garbage() is None  # collected, not frozen for good
    del kept  # garbage now, but frozen: an ordinary collection leaves it
    gc.collect()
    assert frozen_ref() is not None
    heap.release()  # an unload: the whole heap is collected, then frozen again
    assert frozen_ref() is None and gc.get_freeze_count() > 0


def test_release_of_a_heap_never_frozen_only_collects() -> None:
    ref = weakref.ref(Node())
    heap.release()
    assert ref() is None and gc.get_freeze_count() == 0


def test_loading_pauses_the_collector_then_freezes() -> None:
    with heap.loading():
        assert not gc.isenabled()
        dropped = weakref.ref(Node())
        churn = [[i] for i in range(10_000)]  # allocations that would run young collections (threshold 700)
        assert dropped() is not None and churn
    assert gc.isenabled() and gc.get_freeze_count() > 0
    assert dropped() is None  # the freeze's collection took it: garbage is never frozen


def test_loading_ends_with_one_collection_not_a_young_one_over_the_whole_paused_heap_first() -> None:
    """Re-enabled before the freeze, the collector ran an automatic generation-0 collection at the
    next allocation: everything allocated while paused was young, so it walked the whole start-up
    heap (0.45 s on the demo server) just before the freeze's own full collection walked it again."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    with heap.loading():
        churn = [[i] for i in range(10_000)]  # far past generation 0's threshold (700)
        gc.callbacks.append(record)
    gc.callbacks.remove(record)
    assert churn and seen == [2]


def test_loading_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    with heap.loading():
        pass
    assert not gc.isenabled() and gc.get_freeze_count() > 0


def test_pause_holds_the_collector_off_until_the_loading_ends() -> None:
    heap.pause()  # a server's first step
    assert not gc.isenabled()
    with heap.loading():
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() > 0


def test_freeze_imports_freezes_without_collecting_until_a_release() -> None:
    """For a heap of imported libraries only: their garbage is kept (frozen), until an unload's release."""
    garbage = weakref.ref(Node())
    heap.freeze_imports()
    assert gc.get_freeze_count() > 0
    gc.collect()
    assert garbage() is not None  # frozen as it was: no collection first
    heap.release()
    assert garbage() is None and gc.get_freeze_count() > 0


def test_releases_in_a_released_once_block_make_one_collection_at_its_end() -> None:
    """A server's stop unloads every model: one walk of the heap frees them all, not one walk each."""
    models = [Node() for _ in range(3)]
    refs = [weakref.ref(m) for m in models]
    heap.freeze()  # loaded: frozen with the heap
    with full_collections() as seen:
        with heap.released_once():
            for _ in range(3):
                models.pop()  # an unload drops its model, then asks for a release
                heap.release()
            assert seen == [] and all(r() is not None for r in refs)  # nothing walked yet
        assert seen == [2]
    assert all(r() is None for r in refs) and gc.get_freeze_count() > 0  # freed, the rest frozen again


def test_a_released_once_block_without_release_collects_nothing() -> None:
    with full_collections() as seen, heap.released_once():
        pass
    assert seen == []


def test_released_once_blocks_on_two_threads_make_one_collection_when_the_last_ends() -> None:
    inner_done = threading.Event()
    outer = heap.released_once()
    outer.__enter__()
    with full_collections() as seen:

        def other() -> None:
            with heap.released_once():
                heap.release()
            inner_done.set()

        threading.Thread(target=other).start()
        assert inner_done.wait(10)
        assert seen == []  # the other block ended, this one still runs
        outer.__exit__(None, None, None)
        assert seen == [2]


def test_an_ending_process_collects_nothing_on_release() -> None:
    """A stopping server or worker exits next: the exit frees its memory, a walk of the heap first is waste."""
    ref = weakref.ref(Node())
    heap.ending()
    with full_collections() as seen:
        heap.release()
        with heap.released_once():
            heap.release()
    assert seen == [] and ref() is not None
