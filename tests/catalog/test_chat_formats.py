"""Cards declare their models' reasoning and tool-call formats; mistakes name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmserve.catalog.loader import CatalogError, parse_catalog

CARD = """
models:
  - id: qwen3-8b
    task: chat
    engine: transformers-chat
    source: ./weights/qwen3
    capabilities: {caps}
    options: {options}
"""


def parse(caps: str = "{}", options: str = "{}"):  # type: ignore[no-untyped-def]
    return parse_catalog(CARD.format(caps=caps, options=options), file="catalog.yaml", base_dir=Path("/srv"))


def test_formats_set_the_capability_flags() -> None:
    card = parse("{reasoning_format: think-tags, tool_call_format: hermes}").get("qwen3-8b")
    caps = card.capabilities
    assert (caps.reasoning, caps.tools, caps.reasoning_format, caps.tool_call_format) == (
        True,
        True,
        "think-tags",
        "hermes",
    )
    plain = parse().get("qwen3-8b").capabilities
    assert (plain.reasoning, plain.tools, plain.reasoning_format, plain.tool_call_format) == (False, False, None, None)
    assert parse("{reasoning_format: think-tags}").filter(task="chat", capability="reasoning")


@pytest.mark.parametrize(
    "caps,field",
    [
        ("{tool_call_format: mistral}", "capabilities.tool_call_format"),
        ("{reasoning_format: '<think>'}", "capabilities.reasoning_format"),
    ],
)
def test_unknown_format_names_the_field(caps: str, field: str) -> None:
    with pytest.raises(CatalogError) as e:
        parse(caps)
    assert e.value.field == field and e.value.model == "qwen3-8b"
    assert "hermes" in str(e.value) or "think-tags" in str(e.value)  # the message lists what is allowed


def test_logits_processor_targets_are_checked() -> None:
    card = parse(options="{logits_processors: ['my_pkg.bans:BanWords']}").get("qwen3-8b")
    assert card.options["logits_processors"] == ["my_pkg.bans:BanWords"]
    with pytest.raises(CatalogError) as e:
        parse(options="{logits_processors: ['not a target']}")
    assert e.value.field == "options.logits_processors[0]"
