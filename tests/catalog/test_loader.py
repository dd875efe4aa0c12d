from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmserve.cards import TASKS
from mmserve.catalog.loader import CatalogError, load_catalog, parse_catalog
from mmserve.errors import InvalidRequestError

GOOD = """
models:
  - id: my-vlm
    task: chat
    engine: transformers-chat
    source: ./weights/my-vlm
    capabilities: {multimodal_enabled: true, max_images: 2, context_length: 4096}
    pricing: {input_per_1m_tokens: 0.2, output_per_1m_tokens: 0.6}
    deployment: {mode: serverless, idle_unload_s: 300}
"""


def _parse(text: str):  # type: ignore[no-untyped-def]
    return parse_catalog(text, file="catalog.yaml", base_dir=Path("/srv"))


def test_good_catalog_parses_and_flag_alias_works() -> None:
    cat = _parse(GOOD)
    card = cat.get("my-vlm")
    assert card.capabilities.vision is True and card.capabilities.max_images == 2
    assert card.deployment.idle_unload_s == 300
    assert cat.filter(task="chat", capability="vision") == [card]


@pytest.mark.parametrize(
    ("kwargs", "param", "listed"),
    [
        ({"task": "chatt"}, "task", "video-generation"),
        ({"capability": "__class__"}, "capability", "vision"),
        ({"capability": "max_images"}, "capability", "vision"),
    ],
)
def test_filter_refuses_unknown_task_or_capability(kwargs: dict[str, str], param: str, listed: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        _parse(GOOD).filter(**kwargs)
    assert err.value.param == param and listed in err.value.message


def test_demo_catalog_is_valid() -> None:
    cat = load_catalog(None)
    assert "demo-vlm" in cat
    assert all(c.task in TASKS for c in cat)


@pytest.mark.parametrize(
    ("text", "model", "field", "words"),
    [
        ("models:\n  - id: a\n    task: painting\n    engine: transformers-chat\n", "a", "task", "chat"),
        ("models:\n  - id: a\n    task: chat\n", "a", "engine", "required"),
        ("models:\n  - id: a\n    task: chat\n    engine: nope\n", "a", "engine", "transformers-chat"),
        (
            "models:\n  - id: a\n    task: chat\n    engine: transformers-chat\n    colour: red\n",
            "a",
            "colour",
            "not a known field",
        ),
        (
            "models:\n  - id: a\n    task: chat\n    engine: transformers-chat\n    capabilities: {max_images: -1}\n",
            "a",
            "capabilities.max_images",
            "greater",
        ),
        (
            "models:\n  - id: a\n    task: chat\n    engine: transformers-chat\n    options: {dtype: int3}\n",
            "a",
            "options.dtype",
            "float32",
        ),
        (
            "models:\n  - id: a\n    task: chat\n    engine: transformers-chat\n    pricing: {per_image: -2}\n",
            "a",
            "pricing.per_image",
            "greater",
        ),
        (
            "models:\n  - id: 'bad id!'\n    task: chat\n    engine: transformers-chat\n",
            "bad id!",
            "id",
            "letters",
        ),
        (
            "models:\n  - id: a\n    task: chat\n    engine: transformers-chat\n"
            "  - id: a\n    task: chat\n    engine: transformers-chat\n",
            "a",
            "id",
            "more than one",
        ),
    ],
)
def test_bad_cards_name_file_model_and_field(text: str, model: str, field: str, words: str) -> None:
    with pytest.raises(CatalogError) as e:
        _parse(text)
    assert e.value.file == "catalog.yaml"
    assert e.value.model == model
    assert e.value.field == field
    assert words in str(e.value)
    assert str(e.value).startswith(f"catalog.yaml: model '{model}': field '{field}'")


def test_not_yaml_and_wrong_shape() -> None:
    with pytest.raises(CatalogError, match="not valid YAML at line"):
        _parse("models: [\n")
    with pytest.raises(CatalogError, match="models:"):
        _parse("- just a list")


def test_cli_models_validates(tmp_path: Path) -> None:
    bad = tmp_path / "cat.yaml"
    bad.write_text(
        "models:\n  - id: x\n    task: chat\n    engine: transformers-chat\n    deployment: {mode: sometimes}\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "models", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert str(bad) in r.stderr and "'x'" in r.stderr and "deployment.mode" in r.stderr
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    r = subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "models", "--config", str(good), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert '"my-vlm"' in r.stdout
