"""docs/api.md's catalog mixing local and hosted models parses, and has a hosted card for every task."""

from __future__ import annotations

import re
from pathlib import Path

from mmserve.catalog.loader import parse_catalog
from mmserve.engines.registry import ENGINES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_mixed_catalog_example_is_valid_and_covers_every_upstream_engine(tmp_path: Path) -> None:
    section = DOCS.read_text().split("## Third-party providers", 1)[1]
    m = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert m
    catalog = parse_catalog(m.group(1), file="api.md", base_dir=tmp_path)
    engines = {card.engine for card in catalog}
    upstream = {name for name in ENGINES if name.startswith("upstream-")}
    assert upstream <= engines and len(upstream) == 6
    tasks = {card.task for card in catalog if card.engine.startswith("upstream-")}
    local = {card.task for card in catalog if not card.engine.startswith("upstream-")}
    assert tasks == local
