"""The decode loop of one replica: continuous batching on the model's forward.

One thread per loaded engine owns the model and the running :class:`KVBatch`. Each turn it

1. admits waiting rows, up to ``max_batch_size`` rows in the batch and ``max_batch_tokens``
   prompt tokens per turn (at least one row, however long its prompt), prefills them (their
   images' features computed there) and samples their first token;
2. decodes one token for every running row in one forward pass;
3. streams each row's token, and drops at once the rows that finished, failed or whose
   client left.

Rows admitted together are prefilled together, left-padded, when their inputs are token
ids alone or token ids and pixel values of one size (LLaVA-style processors); other
families' processor outputs (image sizes, grids, token types...) differ in shape from row to
row, so those rows are prefilled alone, their inputs reaching the forward as they would
alone. A prefill or step that fails is rerun row by row: only the failing row fails.
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
from mmserve.engines.transformers_chat.sampling import hold_back_end, sample_rows
from mmserve.errors import EngineUnavailableError

log = logging.getLogger("mmserve.engines.transformers_chat.scheduler")


class Outbox:
    """What the rows send to their event loops, delivered once per turn: one wake-up of each loop, not one per token.

    A loop that has not yet run its last delivery gets no second wake-up: the items of later
    turns join that delivery (the loop takes everything waiting when it runs it). A busy
    event loop thus costs the decode thread no extra self-pipe writes (each one drops the
    GIL, and winning it back can wait on the busy loop), and rows it is late for get their
    tokens together, in one delta.
    """

    def __init__(self) -> None:
        self._items: dict[Any, list[tuple[Any, Any]]] = {}  # this turn's (decode thread only)
        self._waiting: dict[Any, list[tuple[Any, Any]]] = {}  # flushed, for a delivery not yet run
        self._lock = threading.Lock()

    def sender(self, loop: Any, queue: Any) -> Callable[[Any], None]:
        """A row's ``send``: called in the decode thread only."""

        def send(item: Any) -> None:
            self._items.setdefault(loop, []).append((queue, item))

        return send

    def flush(self) -> None:
        items, self._items = self._items, {}
        if not items:
            return
        wake = []
        with self._lock:
            for loop, pairs in items.items():
                waiting = self._waiting.get(loop)
                if waiting is None:
                    self._waiting[loop] = pairs
                    wake.append(loop)
                else:
                    waiting.extend(pairs)
        for loop in wake:
            try:
                loop.call_soon_threadsafe(self._deliver, loop)
            except RuntimeError:  # that event loop is closed: nobody is listening
                with self._lock:
                    self._waiting.pop(loop, None)

    def _deliver(self, loop: Any) -> None:
        """In ``loop``: hand every waiting item to its queue."""
        with self._lock:
            pairs = self._waiting.pop(loop, [])
        for queue, item in pairs:
            queue.put_nowait(item)


@dataclass
class LoopStats:
    prefills: int = 0
    prefilled_together: int = 0  # of those, rows prefilled in a group of several
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
        pad_id: int,
        name: str,
        sdpa_mask: bool = False,
        min_new_tokens: int = 0,
        eos: tuple[int, ...] = (),
    ) -> None:
        self.model = model
        self.new_cache = new_cache
        self.batch_processors = batch_processors  # row-independent (the model's suppressed tokens): all rows at once
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.positions = positions  # pass per-row position ids (False: the model computes its own)
        self.pad_id = pad_id  # fills the left of shorter prompts in a batched prefill (masked)
        self.sdpa_mask = sdpa_mask  # decoding steps pass a ready 4-D mask (see KVBatch.step)
        # the model's generation_config.min_new_tokens: no end of sequence before that many tokens
        self.min_new_tokens = min_new_tokens if eos else 0
        self.eos = list(eos)
        self.rows: list[Row] = []
        self.batch: KVBatch | None = None
        self.stats = LoopStats()
        self.outbox = Outbox()
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
                    for group in self._groups(admitted):
                        if len(group) > 1:
                            self._prefill_group(group)
                        else:
                            self._prefill(group[0])
                        self.outbox.flush()  # their first tokens now: the others' wait for the step
                    if self.rows:
                        self._step()
                        self.outbox.flush()
        except BaseException as e:  # a bug in the loop itself: every row learns of it, none hangs
            log.exception("the decode loop stopped")
            self._fail_all(e)
            raise
        finally:
            self.outbox.flush()
        self._fail_all(EngineUnavailableError("The model was unloaded."))
        self.outbox.flush()

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

    def _groups(self, rows: list[Row]) -> list[list[Row]]:
        """The admitted rows, grouped by what can be prefilled together."""
        groups: dict[Any, list[Row]] = {}
        alone: list[list[Row]] = []
        for row in rows:
            key = row.prefill_key if self.positions else None
            if key is None:
                alone.append([row])
            else:
                groups.setdefault(key, []).append(row)
        return [*groups.values(), *alone]

    def _prefill_group(self, rows: list[Row]) -> None:
        """Prefill rows together, left-padded; if that fails, one by one (only the failing one fails)."""
        import torch

        rows = [r for r in rows if not r.cancelled]
        if len(rows) < 2:
            for row in rows:
                self._prefill(row)
            return
        try:
            device = rows[0].inputs["input_ids"].device
            width = max(r.prompt_len for r in rows)
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long, device=device)
            mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
            for i, row in enumerate(rows):
                ids[i, width - row.prompt_len :] = row.inputs["input_ids"][0]
                mask[i, width - row.prompt_len :] = 1
            extra = {}
            if "pixel_values" in rows[0].inputs:
                extra["pixel_values"] = torch.cat([r.inputs["pixel_values"] for r in rows])
            cache = self.new_cache()
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
        except Exception as e:
            log.warning("a batched prefill failed (%s); prefilling its %d rows one by one", e, len(rows))
            for row in rows:
                self._prefill(row)
            return
        self.stats.prefills += len(rows)
        self.stats.prefilled_together += len(rows)
        for row in rows:
            row.inputs = None
        tokens = self._choose(rows, out.logits[:, -1])
        group = KVBatch(cache, mask, mask.sum(-1), torch.tensor([t or 0 for t in tokens], device=device))
        keep = [
            i for i, (r, t) in enumerate(zip(rows, tokens, strict=True)) if t is not None and not self._accept(r, t)
        ]
        if not keep:
            return
        if len(keep) < len(rows):
            group.select(keep)
        self._join(group, [rows[i] for i in keep])

    def _join(self, group: KVBatch, rows: list[Row]) -> None:
        if self.batch is None:
            self.batch = group
        else:
            self.batch.extend(group)
        self.rows.extend(rows)

    def _prefill(self, row: Row) -> None:
        if row.cancelled:
            return
        self.stats.prefills += 1
        try:
            cache = self.new_cache()
            out = self.model(**row.inputs, cache=cache, use_cache=True, logits_to_keep=1)
            mask = row.inputs.get("attention_mask")
        except Exception as e:
            row.fail(e)
            return
        finally:
            row.inputs = None
        (token,) = self._choose([row], out.logits[:, -1])
        if token is None or self._accept(row, token):
            return
        if mask is None:
            import torch

            mask = torch.ones((1, row.prompt_len), dtype=torch.long, device=out.logits.device)
        self._join(KVBatch.single(cache, mask, token), [row])

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
            logits = self.batch.step(self.model, positions=self.positions, sdpa_mask=self.sdpa_mask)
        except Exception as e:
            if len(self.rows) == 1:
                self.rows[0].fail(e)
                self._keep([])
                return
            log.warning("a batched decoding step failed (%s); running its %d rows one by one", e, len(self.rows))
            self._step_one_by_one()
            return
        import torch

        tokens = self._choose(self.rows, logits)
        finished: set[int] = set()
        for i, (row, token) in enumerate(zip(self.rows, tokens, strict=True)):
            if token is None or self._accept(row, token):  # None: its processors failed (it was told)
                finished.add(i)
        self.batch.last = torch.tensor([t or 0 for t in tokens], device=self.batch.last.device)
        if finished:
            self._keep([i for i in range(len(self.rows)) if i not in finished])

    def _choose(self, rows: list[Row], logits: Any) -> list[int | None]:
        """Every row's next token (None for a row whose processors failed: it is failed here).

        The model's row-independent processors run on the whole batch at once, each row's own
        (hooks, grammar) on its row, then :func:`sample_rows` samples all rows together.
        """
        import torch

        for processor in self.batch_processors:
            logits = processor(None, logits)
        if self.min_new_tokens:  # as generate()'s MinNewTokensLengthLogitsProcessor, before the rows' own
            logits = hold_back_end(logits, [r.length - r.prompt_len for r in rows], self.min_new_tokens, self.eos)
        failed: set[int] = set()
        if any(r.has_processors for r in rows):
            parts = []
            for i, row in enumerate(rows):
                part = logits[i : i + 1]
                if row.has_processors:
                    try:
                        part = row.process(part)
                    except Exception as e:
                        row.fail(e)
                        failed.add(i)
                parts.append(part)
            logits = torch.cat(parts)
        tokens, logprobs = sample_rows(logits, [r.sampler for r in rows], [r.generated() for r in rows])
        for row, lp in zip(rows, logprobs, strict=True):
            row.last_logprobs = lp
        return [None if i in failed else t for i, t in enumerate(tokens)]

    @staticmethod
    def _accept(row: Row, token: int) -> bool:
        """Give ``token`` to the row; whether the row is over (finished, or failed on the way)."""
        try:
            done = row.accept(token, row.last_logprobs)
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
                logits = part.step(self.model, positions=self.positions, sdpa_mask=self.sdpa_mask)
            except Exception as e:
                row.fail(e)
                continue
            (token,) = self._choose([row], logits)
            if token is None or self._accept(row, token):
                continue
            part.last[0] = token
            self._join(part, [row])

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
