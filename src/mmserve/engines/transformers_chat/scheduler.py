"""The decode loop of one replica: continuous batching on the model's forward.

One thread per loaded engine owns the model and the running :class:`KVBatch`. Each turn it

1. admits waiting rows, up to ``max_batch_size`` rows in the batch and ``max_batch_tokens``
   prompt tokens per turn (at least one row, however long its prompt), prefilling each one
   alone (its images' features computed there) and sampling its first token;
2. decodes one token for every running row in one forward pass;
3. streams each row's token, and drops at once the rows that finished, failed or whose
   client left.

Prefills run one row at a time: each model family's processor outputs (pixel values, image
sizes, grid shapes...) then reach its forward exactly as they would alone, and a row's
prompt is computed bit for bit as alone. Decoding, the step that repeats, is what runs
batched. A row whose forward fails is found by running the rows of that step one by one;
only it fails.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmserve.engines.transformers_chat.batch import KVBatch
from mmserve.engines.transformers_chat.row import Row
from mmserve.errors import EngineUnavailableError

log = logging.getLogger("mmserve.engines.transformers_chat.scheduler")


@dataclass
class LoopStats:
    prefills: int = 0
    steps: int = 0  # batched decoding steps
    rows_decoded: int = 0  # tokens decoded by those steps (the mean batch size is rows_decoded / steps)
    peak: int = 0  # the most rows one step decoded


class DecodeLoop:
    def __init__(
        self,
        model: Any,
        *,
        new_cache: Callable[[], Any],
        batch_processors: list[Any],
        max_batch_size: int,
        max_batch_tokens: int,
        positions: bool,
        name: str,
    ) -> None:
        self.model = model
        self.new_cache = new_cache
        self.batch_processors = batch_processors  # row-independent (the model's suppressed tokens): all rows at once
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.positions = positions  # pass per-row position ids (False: the model computes its own)
        self.rows: list[Row] = []
        self.batch: KVBatch | None = None
        self.stats = LoopStats()
        self._inbox: deque[Row] = deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> int:
        """Rows in the batch now (read by the metrics collector from another thread)."""
        return len(self.rows)

    @property
    def waiting(self) -> int:
        return len(self._inbox)

    def submit(self, row: Row) -> None:
        with self._cv:
            if self._stopping:
                raise EngineUnavailableError("The model is being unloaded. Retry shortly.")
            self._inbox.append(row)
            self._cv.notify()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        import torch

        try:
            with torch.inference_mode():
                while True:
                    with self._cv:
                        while not self._inbox and not self.rows and not self._stopping:
                            self._cv.wait()
                        if self._stopping:
                            break
                        admitted = self._admit()
                    for row in admitted:
                        self._prefill(row)
                    if self.rows:
                        self._step()
        except BaseException as e:  # a bug in the loop itself: every row learns of it, none hangs
            log.exception("the decode loop stopped")
            self._fail_all(e)
            raise
        self._fail_all(EngineUnavailableError("The model was unloaded."))

    def _admit(self) -> list[Row]:
        room = self.max_batch_size - len(self.rows)
        budget = self.max_batch_tokens
        admitted: list[Row] = []
        while self._inbox and len(admitted) < room:
            row = self._inbox[0]
            if row.cancelled:
                self._inbox.popleft()
                continue
            if admitted and row.prompt_len > budget:
                break
            budget -= row.prompt_len
            admitted.append(self._inbox.popleft())
        return admitted

    def _prefill(self, row: Row) -> None:
        if row.cancelled:
            return
        self.stats.prefills += 1
        try:
            cache = self.new_cache()
            out = self.model(**row.inputs, cache=cache, use_cache=True, logits_to_keep=1)
            mask = row.inputs.get("attention_mask")
            logits = self._batch_processed(out.logits[:, -1])
            token = row.choose(logits)
            done = row.accept(token)
        except Exception as e:
            row.fail(e)
            return
        finally:
            row.inputs = None
        if done:
            row.finish()
            return
        if mask is None:
            import torch

            mask = torch.ones((1, row.prompt_len), dtype=torch.long, device=out.logits.device)
        single = KVBatch.single(cache, mask, token)
        if self.batch is None:
            self.batch = single
        else:
            self.batch.extend(single)
        self.rows.append(row)

    def _step(self) -> None:
        gone = [i for i, r in enumerate(self.rows) if r.cancelled]
        if gone:
            self._keep([i for i in range(len(self.rows)) if i not in set(gone)])
            if not self.rows:
                return
        assert self.batch is not None
        self.stats.steps += 1
        self.stats.rows_decoded += len(self.rows)
        self.stats.peak = max(self.stats.peak, len(self.rows))
        try:
            logits = self.batch.step(self.model, positions=self.positions)
        except Exception as e:
            if len(self.rows) == 1:
                self.rows[0].fail(e)
                self._keep([])
                return
            log.warning("a batched decoding step failed (%s); running its %d rows one by one", e, len(self.rows))
            self._step_one_by_one()
            return
        import torch

        tokens = self._choose_all(logits)
        finished: set[int] = set()
        for i, (row, token) in enumerate(zip(self.rows, tokens, strict=True)):
            if token is None or self._accept(row, token):  # None: its processors or sampler failed (told)
                finished.add(i)
        self.batch.last = torch.tensor([t or 0 for t in tokens], device=self.batch.last.device)
        if finished:
            self._keep([i for i in range(len(self.rows)) if i not in finished])

    def _choose_all(self, logits: Any) -> list[int | None]:
        """Every row's next token: an argmax over the batch for plain greedy rows, each row's own sampler otherwise."""
        logits = self._batch_processed(logits)
        greedy = logits.argmax(-1).tolist() if any(r.greedy_plain for r in self.rows) else None
        tokens: list[int | None] = []
        for i, row in enumerate(self.rows):
            if greedy is not None and row.greedy_plain:
                tokens.append(int(greedy[i]))
                continue
            try:
                tokens.append(row.choose(logits[i : i + 1]))
            except Exception as e:
                row.fail(e)
                tokens.append(None)
        return tokens

    def _batch_processed(self, logits: Any) -> Any:
        for processor in self.batch_processors:
            logits = processor(None, logits)
        return logits

    @staticmethod
    def _accept(row: Row, token: int) -> bool:
        try:
            done = row.accept(token)
            if done:
                row.finish()
            return done
        except Exception as e:
            row.fail(e)
            return True

    def _step_one_by_one(self) -> None:
        """After a failed batched step: each row alone, so that only the ones that fail fail."""
        assert self.batch is not None
        parts = self.batch.split()
        rows, self.rows, self.batch = self.rows, [], None
        for row, part in zip(rows, parts, strict=True):
            try:
                logits = self._batch_processed(part.step(self.model, positions=self.positions))
                token = row.choose(logits)
            except Exception as e:
                row.fail(e)
                continue
            part.last[0] = token
            if self._accept(row, token):
                continue
            if self.batch is None:
                self.batch = part
            else:
                self.batch.extend(part)
            self.rows.append(row)

    def _keep(self, keep: list[int]) -> None:
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.batch = None
        elif self.batch is not None:
            self.batch.select(keep)

    def _fail_all(self, exc: BaseException) -> None:
        with self._cv:
            waiting = list(self._inbox)
            self._inbox.clear()
        for row in [*self.rows, *waiting]:
            row.fail(exc)
        self.rows, self.batch = [], None
