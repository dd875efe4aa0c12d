"""Work of concurrent requests, run by worker threads in batches of items that can run together.

A free worker takes the oldest waiting item and, in order, every waiting item with the same
key, up to ``limit`` (items have a size: images, windows...). Nothing waits to fill a batch:
a batch is what queued up while the workers were busy, so a lone request runs at once and
a burst runs together. Used by the diffusers image engine (images of the same size and
step count in one pipeline call) and Whisper (30 s windows of several requests in one
``generate``).

Each item carries a ``concurrent.futures.Future``; ``run(batch)`` sets the results. An item
whose future was cancelled before a worker took it is skipped; if ``run`` raises, every
item of the batch not yet done gets the exception.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger("mmserve.engines.batcher")


class Item(Protocol):
    @property
    def future(self) -> Future[Any]: ...


T = TypeVar("T", bound=Item)


class Batcher(Generic[T]):
    def __init__(
        self,
        run: Callable[[list[T]], None],
        *,
        key: Callable[[T], Hashable | None],
        limit: int,
        size: Callable[[T], int] = lambda _: 1,
        workers: int = 1,
        name: str = "batcher",
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self._run = run
        self._key = key  # None: the item runs alone
        self._size = size
        self.limit = limit
        self._on_start = on_start
        self._items: deque[T] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self.batches = 0  # batches run (tests and metrics read them)
        self.largest = 0  # the most items one batch held
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(max(1, workers))
        ]
        for t in self._threads:
            t.start()

    @property
    def workers(self) -> int:
        """Worker threads: batches that run at once."""
        return len(self._threads)

    def submit(self, item: T) -> None:
        with self._cv:
            if self._closed:
                raise RuntimeError("the engine is unloaded")
            self._items.append(item)
            self._cv.notify()

    def close(self) -> None:
        """Stop the workers after their current batch; waiting items are cancelled."""
        with self._cv:
            self._closed = True
            waiting = list(self._items)
            self._items.clear()
            self._cv.notify_all()
        for item in waiting:
            item.future.cancel()

    def _take(self) -> list[T]:
        """The next batch (called with the lock held and at least one item waiting)."""
        first = self._items.popleft()
        batch = [first]
        key = self._key(first)
        if key is None:
            return batch
        used = self._size(first)
        rest: deque[T] = deque()
        while self._items:
            item = self._items.popleft()
            if self._key(item) == key and used + self._size(item) <= self.limit and not item.future.done():
                batch.append(item)
                used += self._size(item)
            else:
                rest.append(item)
        self._items = rest
        return batch

    def _work(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while True:
            with self._cv:
                while not self._items and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                batch = self._take()
            batch = [item for item in batch if item.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            self.batches += 1
            self.largest = max(self.largest, len(batch))
            try:
                self._run(batch)
            except BaseException as e:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(e)
