from __future__ import annotations

from pathlib import Path

import pytest

from mmserve.catalog.loader import CatalogError, load_catalog, parse_catalog


def test_demo_catalog_has_a_clip_style_embedding_model() -> None:
    card = load_catalog(None).get("demo-embed", task="embedding")
    assert card.engine == "transformers-embedding" and card.source == "demo:clip"
    assert card.capabilities.vision and card.capabilities.embedding_dimensions == 32
    assert card.pricing.input_per_1m_tokens > 0 and card.pricing.per_image > 0


@pytest.mark.parametrize(
    ("card", "field"),
    [
        ("task: embedding\n    engine: transformers-embedding\n    options: {pooling: max}", "options.pooling"),
        ("task: embedding\n    engine: transformers-embedding\n    options: {batch_size: 0}", "options.batch_size"),
        ("task: embedding\n    engine: transformers-embedding\n    limits: {max_inputs: 0}", "limits.max_inputs"),
        (
            "task: embedding\n    engine: transformers-embedding\n    capabilities: {embedding_dimensions: 0}",
            "capabilities.embedding_dimensions",
        ),
        ("task: chat\n    engine: transformers-embedding", "engine"),
        ("task: embedding\n    engine: transformers-chat", "engine"),
    ],
)
def test_bad_embedding_cards_name_the_field(card: str, field: str) -> None:
    with pytest.raises(CatalogError) as e:
        parse_catalog(f"models:\n  - id: a\n    {card}\n", file="c.yaml", base_dir=Path("/srv"))
    assert e.value.model == "a" and e.value.field == field
