"""The house reads top-down: every module imports only from its own package and the layers below.

The layers (docs/design.md draws them), lowest first:

    0  errors, settings, cards, metrics, db, progress, timing,  the vocabulary every layer shares
       heap, migrations
    1  media, storage, chatformat                        bytes in and out; chat formats
    2  engines                                           the only code that touches model libraries
    3  catalog                                           catalog files, validated against the engines
    4  runtime                                           deployments of the catalog's engines
    5  control, jobs                                     routing, keys, usage; durable video jobs
    6  api                                               HTTP: routers, protocols, services
    7  keys_cli, models_cli                              sub-commands
    8  cli                                               the ``mmserve`` entry point

Imports under ``if TYPE_CHECKING:`` count too: a type from above is a dependency from above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mmserve"
LAYERS: list[set[str]] = [
    {"errors", "settings", "cards", "metrics", "db", "progress", "timing", "heap", "migrations"},
    {"media", "storage", "chatformat"},
    {"engines"},
    {"catalog"},
    {"runtime"},
    {"control", "jobs"},
    {"api"},
    {"keys_cli", "models_cli"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def top_package(module: str) -> str:
    """``mmserve.media.image.decode`` -> ``media``; ``mmserve.errors`` -> ``errors``."""
    return module.split(".")[1]


def imported_modules(source: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return [m for m in out if m.startswith("mmserve.")]


def violations(module: str, source: str) -> list[str]:
    """The imports of ``module`` that go up (or sideways into a sibling package of the same layer)."""
    here = top_package(module)
    bad = []
    for target in imported_modules(source):
        there = top_package(target)
        if there == here:
            continue
        if there not in RANK:
            bad.append(f"{module} imports {target}: '{there}' is in no layer (add it to LAYERS and the design)")
        elif RANK[there] > RANK[here] or (RANK[there] == RANK[here] and RANK[here] != 0):
            bad.append(f"{module} (layer {RANK[here]}) imports {target} (layer {RANK[there]})")
    return bad


def modules() -> dict[str, str]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        out[".".join(rel.parts).removesuffix(".__init__")] = path.read_text()
    return out


def test_every_package_has_a_layer() -> None:
    found = {top_package(m) for m in modules() if m != "mmserve"}
    assert found <= set(RANK), f"packages in no layer: {sorted(found - set(RANK))}"


def test_imports_go_downwards_only() -> None:
    bad = [v for module, source in modules().items() if module != "mmserve" for v in violations(module, source)]
    assert not bad, "\n".join(bad)


def test_no_import_circle_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for module, source in modules().items():
        if module == "mmserve":
            continue
        here = top_package(module)
        edges.setdefault(here, set()).update(t for t in map(top_package, imported_modules(source)) if t != here)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        nexts = edges.get(start, set())
        return goal in nexts or any(reaches(n, goal, seen | {n}) for n in nexts - seen)

    circles = sorted(p for p in edges if reaches(p, p, {p}))
    assert not circles, f"packages on an import circle: {circles}"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("mmserve.engines.x", "from mmserve.api.errors import validation_error", "layer 2) imports mmserve.api.errors"),
        ("mmserve.media.image.y", "import mmserve.engines.types", "imports mmserve.engines.types (layer 2)"),
        ("mmserve.media.z", "if TYPE_CHECKING:\n    from mmserve.catalog import Catalog", "mmserve.catalog (layer 3)"),
        ("mmserve.control.k", "from mmserve.jobs.store import VideoJob", "(layer 5) imports mmserve.jobs.store"),
        ("mmserve.runtime.r", "from mmserve.newthing import x", "'newthing' is in no layer"),
    ],
)
def test_the_check_catches_an_upward_import(module: str, source: str, expected: str) -> None:
    found = violations(module, source)
    assert len(found) == 1 and expected in found[0], found


def test_downward_and_internal_imports_pass() -> None:
    source = "from mmserve.errors import EngineError\nfrom mmserve.media.image.decode import ImageLimits\n"
    assert violations("mmserve.engines.base", source) == []
    assert violations("mmserve.engines.a", "from mmserve.engines.types import ChatInput") == []
    assert violations("mmserve.db", "from mmserve.settings import Settings") == []
