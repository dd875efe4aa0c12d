"""Load and validate a catalog YAML file; every problem names the file, the model and the field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mmserve.cards import ModelCard, RouterSpec
from mmserve.catalog.catalog import Catalog
from mmserve.engines.registry import ENGINES, engine_options_model
from mmserve.errors import format_loc

DEMO_CATALOG = "demo.yaml"


class CatalogError(Exception):
    """A catalog that cannot be served. ``str()`` is a one-line message for the operator."""

    def __init__(self, file: str, message: str, *, model: str | None = None, field: str | None = None):
        self.file, self.model, self.field = file, model, field
        where = file + (f": model '{model}'" if model else "") + (f": field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


def load_catalog(path: Path | None = None) -> Catalog:
    """The catalog at ``path``, or the built-in demo catalog when ``path`` is None."""
    if path is None:
        text = resources.files("mmserve.catalog").joinpath(DEMO_CATALOG).read_text()
        return parse_catalog(text, file="<demo catalog>", base_dir=Path.cwd())
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise CatalogError(str(path), f"cannot read the file ({e.strerror})") from None
    return parse_catalog(text, file=str(path), base_dir=Path(path).resolve().parent)


def parse_catalog(text: str, *, file: str, base_dir: Path) -> Catalog:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise CatalogError(file, f"is not valid YAML{at}") from None
    if doc is None:
        doc = {"models": []}
    if not isinstance(doc, dict) or not isinstance(doc.get("models", []), list):
        raise CatalogError(file, "must be a mapping with a 'models:' list of model cards")
    unknown = set(doc) - {"models", "routers"}
    if unknown:
        raise CatalogError(file, f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    cards: list[ModelCard] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.get("models") or []):
        label = str(raw["id"]) if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{i}"
        card = _parse_card(raw, file=file, label=label)
        for name in [card.id, *card.aliases]:
            if name in seen:
                raise CatalogError(file, f"'{name}' is used by more than one card", model=card.id, field="id")
            seen.add(name)
        cards.append(card)
    routers = _parse_routers(doc.get("routers") or [], cards, seen, file)
    return Catalog(cards, base_dir=base_dir, file=file, routers=routers)


def _parse_routers(raw: Any, cards: list[ModelCard], seen: set[str], file: str) -> dict[str, RouterSpec]:
    if not isinstance(raw, list):
        raise CatalogError(file, "'routers:' must be a list of router aliases")
    by_id = {c.id: c for c in cards}
    out: dict[str, RouterSpec] = {}
    for i, item in enumerate(raw):
        label = str(item["id"]) if isinstance(item, dict) and isinstance(item.get("id"), str) else f"#{i}"
        try:
            spec = RouterSpec.model_validate(item)
        except ValidationError as e:
            err = e.errors()[0]
            raise CatalogError(file, _msg(err), model=f"router {label}", field=format_loc(list(err["loc"]))) from None
        if spec.id in seen:
            raise CatalogError(file, f"'{spec.id}' is already a model id or alias", model=f"router {label}", field="id")
        seen.add(spec.id)
        for cid in spec.candidates:
            card = by_id.get(cid)
            if card is None:
                raise CatalogError(
                    file,
                    f"candidate '{cid}' is not a model in this catalog",
                    model=f"router {label}",
                    field="candidates",
                )
            if card.task != spec.task:
                raise CatalogError(
                    file,
                    f"candidate '{cid}' is a {card.task} model, not {spec.task}",
                    model=f"router {label}",
                    field="candidates",
                )
        out[spec.id] = spec
    return out


def _parse_card(raw: Any, *, file: str, label: str) -> ModelCard:
    if not isinstance(raw, dict):
        raise CatalogError(file, "each model card must be a mapping", model=label)
    try:
        card = ModelCard.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        raise CatalogError(file, _msg(err), model=label, field=format_loc(list(err["loc"]))) from None
    if card.engine not in ENGINES:
        known = ", ".join(sorted(n for n, spec in ENGINES.items() if spec.task == card.task))
        raise CatalogError(
            file,
            f"unknown engine '{card.engine}' (engines for {card.task}: {known})",
            model=card.id,
            field="engine",
        )
    spec = ENGINES[card.engine]
    if spec.task != card.task:
        raise CatalogError(
            file,
            f"engine '{card.engine}' serves task '{spec.task}', not '{card.task}'",
            model=card.id,
            field="engine",
        )
    try:
        engine_options_model(card.engine).model_validate(card.options)
    except ValidationError as e:
        err = e.errors()[0]
        field = "options." + format_loc(list(err["loc"])) if err["loc"] else "options"
        raise CatalogError(file, _msg(err), model=card.id, field=field) from None
    return card


def _msg(err: Any) -> str:
    if err["type"] == "missing":
        return "is required"
    if err["type"] == "extra_forbidden":
        return "is not a known field"
    return str(err["msg"]).removeprefix("Value error, ")
