"""Admission to the running batch: max_batch_size rows, max_batch_tokens prompt tokens per turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmserve.engines.transformers_chat.scheduler import DecodeLoop


@dataclass
class _Waiting:
    prompt_len: int
    cancelled: bool = False


def _loop(max_batch_size: int, max_batch_tokens: int) -> DecodeLoop:
    loop = DecodeLoop(
        None,
        new_cache=lambda: None,
        batch_processors=[],
        max_batch_size=max_batch_size,
        max_batch_tokens=max_batch_tokens,
        positions=True,
        pad_id=0,
        name="test-loop",
    )
    loop.stop()  # its thread ends: _admit is driven by hand
    return loop


def _admit(loop: DecodeLoop, waiting: list[Any]) -> list[int]:
    loop._inbox.extend(waiting)
    return [row.prompt_len for row in loop._admit()]


def test_prompt_tokens_per_turn_are_bounded_but_one_prompt_always_goes() -> None:
    loop = _loop(8, 100)
    assert _admit(loop, [_Waiting(60), _Waiting(30), _Waiting(20), _Waiting(5)]) == [60, 30]  # 20 would pass 100
    assert _admit(loop, []) == [20, 5]
    assert _admit(loop, [_Waiting(500), _Waiting(1)]) == [500]  # longer than the budget: alone in its turn
    assert _admit(loop, []) == [1]


def test_rows_are_bounded_by_the_room_left_and_cancelled_ones_are_dropped() -> None:
    loop = _loop(3, 10_000)
    loop.rows = [object()]  # type: ignore[list-item]
    assert _admit(loop, [_Waiting(1, cancelled=True), _Waiting(2), _Waiting(3), _Waiting(4)]) == [2, 3]
    assert len(loop._inbox) == 1
