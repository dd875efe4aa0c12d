"""Which steps of a run get a preview."""

from __future__ import annotations

import pytest

from mmserve.engines.common.latent_preview import preview_steps


@pytest.mark.parametrize(
    ("total", "count", "steps"),
    [(4, 0, []), (4, 1, [1]), (4, 3, [0, 1, 2]), (4, 5, [0, 1, 2]), (8, 2, [2, 4]), (1, 3, []), (30, 3, [7, 14, 21])],
)
def test_previews_are_spread_and_never_the_last_step(total: int, count: int, steps: list[int]) -> None:
    assert preview_steps(total, count) == steps
