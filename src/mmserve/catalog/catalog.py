"""The in-memory catalog: cards by id and alias, with filters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from mmserve.cards import TASKS, Capabilities, ModelCard, RouterSpec
from mmserve.errors import InvalidRequestError, ModelNotFoundError

# The capabilities that are yes/no flags, the ones `?capability=` filters on.
BOOLEAN_CAPABILITIES = tuple(n for n, f in Capabilities.model_fields.items() if f.annotation is bool)


class Catalog:
    def __init__(
        self,
        cards: Iterable[ModelCard],
        *,
        base_dir: Path,
        file: str = "<memory>",
        routers: dict[str, RouterSpec] | None = None,
    ) -> None:
        self.cards: dict[str, ModelCard] = {}
        self._names: dict[str, str] = {}
        for card in cards:
            self.cards[card.id] = card
            self._names[card.id] = card.id
            for alias in card.aliases:
                self._names[alias] = card.id
        self.base_dir = base_dir
        self.file = file
        self.routers: dict[str, RouterSpec] = routers or {}

    def __iter__(self) -> Iterator[ModelCard]:
        return iter(self.cards.values())

    def __len__(self) -> int:
        return len(self.cards)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def get(self, name: str, *, task: str | None = None, param: str = "model") -> ModelCard:
        """The card for ``name`` (id or alias); 404 if unknown or not for ``task``."""
        cid = self._names.get(name)
        if cid is None:
            raise ModelNotFoundError(name, param=param)
        card = self.cards[cid]
        if task is not None and card.task != task:
            raise InvalidRequestError(
                f"The model '{name}' is a {card.task} model and cannot serve {task} requests. "
                f"GET /v1/models?task={task} lists the models that can.",
                param=param,
                code="model_task_mismatch",
            )
        return card

    def filter(self, *, task: str | None = None, capability: str | None = None) -> list[ModelCard]:
        """Cards of ``task`` having the boolean ``capability``; unknown names are a 400 listing the known ones."""
        if task is not None and task not in TASKS:
            raise InvalidRequestError(f"Unknown task '{task}'. Tasks: {', '.join(TASKS)}.", param="task")
        if capability is not None and capability not in BOOLEAN_CAPABILITIES:
            raise InvalidRequestError(
                f"Unknown capability '{capability}'. Capabilities: {', '.join(BOOLEAN_CAPABILITIES)}.",
                param="capability",
            )
        out = []
        for card in self.cards.values():
            if task and card.task != task:
                continue
            if capability and not getattr(card.capabilities, capability, False):
                continue
            out.append(card)
        return out
