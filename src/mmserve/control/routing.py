"""Best-fit routing: ``model: "auto"`` or a router alias -> an ordered list of cards to try.

Candidates are filtered by what the request needs (task, images -> vision, number of
images, context length, tools, reasoning), unhealthy (failed to load) and saturated
deployments are skipped, and the rest are ordered by the router's policy:

- ``cheapest``: estimated cost of this request from the cards' prices;
- ``fastest``: observed latency (an exponentially weighted average per model; models not yet
  observed go first, so every candidate gets measured);
- ``priority``: the order the router lists its candidates in.

Services call :meth:`ModelRouter.serve` with what the request needs and an ``attempt`` on one
card: it routes, tries the cards in order and falls back to the next when one fails before
any output was sent. A plain model id routes to that model alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mmserve.cards import ModelCard, RouterSpec
from mmserve.catalog.catalog import Catalog
from mmserve.control.context import current, principal
from mmserve.errors import (
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
    OverloadedError,
    PermissionDeniedError,
    clip,
)
from mmserve.runtime.runtime import Runtime

log = logging.getLogger("mmserve.routing")
T = TypeVar("T")

AUTO = "auto"
EWMA_ALPHA = 0.3
# Failures that say "this model cannot serve now" (not "this request is wrong"): try the next.
FALLBACK_ERRORS = (EngineError, EngineUnavailableError, OverloadedError)


@dataclass
class Needs:
    """What a request requires of the model that serves it."""

    task: str
    images: int = 0
    videos: int = 0
    audios: int = 0  # input_audio parts
    prompt_tokens: int = 0  # an estimate before tokenization
    output_tokens: int = 0
    tools: bool = False
    reasoning: bool = False
    units: float = 1.0  # images to make / audio or video seconds / embedded tokens, for per-unit prices
    edits: bool = False  # image edits
    translation: bool = False  # audio translation
    dimensions: int | None = None  # embeddings: the vector length asked for

    def describe(self) -> str:
        parts = [self.task]
        if self.images:
            parts.append(f"vision with {self.images} image{'s' if self.images > 1 else ''}")
        if self.videos:
            parts.append(f"{self.videos} video{'s' if self.videos > 1 else ''}")
        if self.audios:
            parts.append("audio input")
        if self.prompt_tokens:
            parts.append(f"a context of at least ~{self.prompt_tokens + self.output_tokens} tokens")
        if self.tools:
            parts.append("tool calling")
        if self.reasoning:
            parts.append("reasoning")
        if self.edits:
            parts.append("image edits")
        if self.translation:
            parts.append("translation")
        return ", ".join(parts)


@dataclass
class Route:
    cards: list[ModelCard]
    reason: str
    routed: bool = False
    skipped: dict[str, str] = field(default_factory=dict)


class ModelRouter:
    def __init__(self, catalog: Catalog, runtime: Runtime, *, cooldown_s: float = 10.0) -> None:
        self.catalog = catalog
        self.runtime = runtime
        self.cooldown_s = cooldown_s
        self.latency: dict[str, float] = {}
        self._failed_until: dict[str, float] = {}
        #: called with (model, cooldown seconds) when a model fails here (shares it with other gateways)
        self.on_failure: list[Callable[[str, float], None]] = []

    def report_failure(self, model: str) -> None:
        """A candidate failed to serve: routers try it last for ``cooldown_s`` (on every gateway, with Redis)."""
        self.cool_down(model, self.cooldown_s)
        for publish in self.on_failure:
            publish(model, self.cooldown_s)

    def cool_down(self, model: str, seconds: float) -> None:
        """Try ``model`` last for ``seconds`` (also called with cooldowns other gateways report)."""
        self._failed_until[model] = max(self._failed_until.get(model, 0.0), time.monotonic() + seconds)

    def observe(self, model: str, seconds: float) -> None:
        old = self.latency.get(model)
        self.latency[model] = seconds if old is None else (1 - EWMA_ALPHA) * old + EWMA_ALPHA * seconds

    def is_router(self, name: str) -> bool:
        return name == AUTO or name in self.catalog.routers

    def route(self, name: str, needs: Needs, *, param: str = "model") -> Route:
        who = principal()
        if not self.is_router(name):
            card = self.catalog.get(name, task=needs.task, param=param)
            who.check_model(card.id, param)
            return Route([card], "requested")
        spec = self.catalog.routers.get(name) or RouterSpec.model_construct(
            id=AUTO, task=needs.task, policy="cheapest", candidates=[]
        )
        if spec.task != needs.task:
            raise InvalidRequestError(
                f"The router '{clip(name)}' routes {spec.task} requests, not {needs.task}.",
                param=param,
                code="model_task_mismatch",
            )
        pool = (
            [self.catalog.cards[c] for c in spec.candidates]
            if spec.candidates
            else self.catalog.filter(task=needs.task)
        )
        fitting: list[ModelCard] = []
        skipped: dict[str, str] = {}
        allowed = [c for c in pool if who.may_use(c.id)]
        if pool and not allowed:
            raise PermissionDeniedError(
                f"This API key may use none of the models behind '{clip(name)}'.", param=param, code="model_not_allowed"
            )
        for card in allowed:
            why = self._misfit(card, needs)
            if why:
                skipped[card.id] = why
            else:
                fitting.append(card)
        if not fitting:
            detail = "; ".join(f"{k}: {v}" for k, v in skipped.items()) or f"no {needs.task} models"
            raise InvalidRequestError(
                f"No model behind '{clip(name)}' fits this request, which needs {needs.describe()} ({detail}).",
                param=param,
                code="no_model_fits",
            )
        healthy = [c for c in fitting if self._healthy(c)]
        unhealthy = [c for c in fitting if c not in healthy]
        # unhealthy candidates stay at the end: a last resort rather than no answer
        ordered = self._order(healthy, spec, needs) + self._order(unhealthy, spec, needs)
        reason = f"{name}: {spec.policy} of {len(fitting)} fitting {needs.task} model(s)"
        if skipped:
            reason += f"; skipped {', '.join(sorted(skipped))}"
        return Route(ordered, reason, routed=True, skipped=skipped)

    async def serve(
        self, name: str, needs: Needs, attempt: Callable[[ModelCard], Awaitable[T]], *, param: str = "model"
    ) -> T:
        """Route ``name`` for ``needs`` and run ``attempt`` on the route's cards in order until one succeeds.

        Only a routed request moves on, and only for failures of the model (not of the request);
        the response headers say which model served and why.
        """
        route = self.route(name, needs, param=param)
        failed: list[str] = []
        for i, card in enumerate(route.cards):
            try:
                result = await attempt(card)
            except FALLBACK_ERRORS as e:
                self.report_failure(card.id)
                if not route.routed or i == len(route.cards) - 1:
                    raise
                log.warning("'%s' failed (%s); falling back to '%s'", card.id, e.code, route.cards[i + 1].id)
                failed.append(f"{card.id} ({e.code})")
                continue
            headers = current().headers
            headers["x-mmserve-model"] = card.id
            headers["x-mmserve-route"] = route.reason + (f"; fell back from {', '.join(failed)}" if failed else "")
            return result
        raise AssertionError("a route always has at least one card")

    # -------------------------------------------------------------- filters

    @staticmethod
    def _misfit(card: ModelCard, needs: Needs) -> str | None:
        caps = card.capabilities
        if needs.images and not caps.vision:
            return "no vision"
        if needs.images > caps.max_images:
            return f"at most {caps.max_images} images"
        if needs.videos and not caps.video:
            return "no video input"
        if needs.videos > caps.max_videos:
            return f"at most {caps.max_videos} videos"
        if needs.audios and not caps.audio_input:
            return "no audio input"
        if needs.task == "chat" and needs.output_tokens > card.limits.max_output_tokens:
            return f"at most {card.limits.max_output_tokens} output tokens"
        if caps.context_length and needs.prompt_tokens + needs.output_tokens > caps.context_length:
            return f"context {caps.context_length} tokens"
        if needs.tools and not caps.tools:
            return "no tool calling"
        if needs.reasoning and not caps.reasoning:
            return "no reasoning"
        if needs.edits and not caps.edits:
            return "no image edits"
        if needs.translation and not caps.translation:
            return "no translation"
        if needs.dimensions is not None:
            native = caps.embedding_dimensions
            if native is not None and needs.dimensions > native:
                return f"{native} dimensions"
            if not caps.matryoshka and needs.dimensions != native:
                return "cannot shorten its vectors"
        return None

    def _healthy(self, card: ModelCard) -> bool:
        if self._failed_until.get(card.id, 0.0) > time.monotonic():
            return False
        dep = self.runtime.deployments.get(card.id)
        return dep is None or (dep.state not in ("failed", "restarting") and not dep.saturated)

    # -------------------------------------------------------------- policies

    def _order(self, cards: list[ModelCard], spec: RouterSpec, needs: Needs) -> list[ModelCard]:
        if spec.policy == "priority":
            return cards
        if spec.policy == "fastest":
            return sorted(cards, key=lambda c: self.latency.get(c.id, -1.0))
        return sorted(cards, key=lambda c: estimated_cost(c, needs))


def estimated_cost(card: ModelCard, needs: Needs) -> float:
    p = card.pricing
    if card.task == "chat":
        # at least one token each way, so prices still order cards when nothing is estimated
        prompt, output = max(needs.prompt_tokens, 1), max(needs.output_tokens, 1)
        return (p.input_per_1m_tokens * prompt + p.output_per_1m_tokens * output) / 1e6
    if card.task == "image-generation":
        return p.per_image * needs.units
    if card.task == "embedding":
        return (p.input_per_1m_tokens * max(needs.units, 1.0)) / 1e6 + p.per_image * needs.images
    if card.task in ("speech", "transcription"):
        return p.per_audio_second * needs.units
    return p.per_video_second * needs.units
