from __future__ import annotations

from pathlib import Path

import pytest

from mmserve.catalog.loader import CatalogError, parse_catalog
from mmserve.control.routing import ModelRouter, Needs
from mmserve.errors import InvalidRequestError, ModelNotFoundError
from mmserve.runtime.runtime import Runtime
from mmserve.settings import Settings

CATALOG = """
models:
  - {id: big-vlm, task: chat, engine: transformers-chat,
     capabilities: {vision: true, max_images: 4, context_length: 8000},
     pricing: {input_per_1m_tokens: 2.0, output_per_1m_tokens: 6.0}}
  - {id: small-vlm, task: chat, engine: transformers-chat,
     capabilities: {vision: true, max_images: 1, context_length: 2000}, limits: {max_output_tokens: 100},
     pricing: {input_per_1m_tokens: 0.5, output_per_1m_tokens: 1.0}}
  - {id: text-cheap, task: chat, engine: transformers-chat, capabilities: {context_length: 4000, tools: true},
     pricing: {input_per_1m_tokens: 0.1, output_per_1m_tokens: 0.2}}
  - {id: text-pricey, task: chat, engine: transformers-chat, capabilities: {context_length: 4000},
     pricing: {input_per_1m_tokens: 1.0, output_per_1m_tokens: 3.0}}
routers:
  - {id: vision-first, task: chat, policy: priority, candidates: [big-vlm, small-vlm]}
  - {id: quick, task: chat, policy: fastest, candidates: [text-cheap, text-pricey]}
"""


@pytest.fixture
def router(tmp_path: Path) -> ModelRouter:
    cat = parse_catalog(CATALOG, file="c.yaml", base_dir=tmp_path)
    return ModelRouter(cat, Runtime(cat, Settings(data_dir=tmp_path)))


def test_auto_picks_cheapest_fitting(router: ModelRouter) -> None:
    assert [c.id for c in router.route("auto", Needs("chat")).cards][:2] == ["text-cheap", "small-vlm"]
    with_image = router.route("auto", Needs("chat", images=1))
    assert [c.id for c in with_image.cards] == ["small-vlm", "big-vlm"]
    assert with_image.routed and "cheapest" in with_image.reason and "text-cheap" in with_image.skipped
    assert [c.id for c in router.route("auto", Needs("chat", images=3)).cards] == ["big-vlm"]
    assert [c.id for c in router.route("auto", Needs("chat", tools=True)).cards] == ["text-cheap"]
    long = router.route("auto", Needs("chat", prompt_tokens=3000, output_tokens=500))
    assert [c.id for c in long.cards] == ["text-cheap", "text-pricey", "big-vlm"]


def test_no_fit_says_what_was_needed(router: ModelRouter) -> None:
    with pytest.raises(InvalidRequestError) as e:
        router.route("auto", Needs("chat", images=6))
    assert e.value.code == "no_model_fits" and "6 images" in e.value.message and "big-vlm" in e.value.message
    with pytest.raises(InvalidRequestError, match="image-generation"):
        router.route("auto", Needs("image-generation"))


def test_priority_and_fastest_policies(router: ModelRouter) -> None:
    assert [c.id for c in router.route("vision-first", Needs("chat", images=1)).cards] == ["big-vlm", "small-vlm"]
    quick = lambda: [c.id for c in router.route("quick", Needs("chat")).cards]  # noqa: E731
    assert quick() == ["text-cheap", "text-pricey"]  # neither observed yet: list order
    router.observe("text-cheap", 2.0)
    assert quick() == ["text-pricey", "text-cheap"]  # unobserved first: it gets measured
    router.observe("text-pricey", 0.5)
    assert quick() == ["text-pricey", "text-cheap"]
    for _ in range(10):
        router.observe("text-pricey", 5.0)
    assert quick() == ["text-cheap", "text-pricey"]


def test_plain_model_id_and_unknown(router: ModelRouter) -> None:
    r = router.route("big-vlm", Needs("chat"))
    assert [c.id for c in r.cards] == ["big-vlm"] and not r.routed
    with pytest.raises(ModelNotFoundError):
        router.route("nope", Needs("chat"))


def test_failed_deployments_are_tried_last(router: ModelRouter) -> None:
    router.runtime.deployments["text-cheap"].error = "boom"
    assert [c.id for c in router.route("quick", Needs("chat")).cards] == ["text-pricey", "text-cheap"]


def test_reported_failures_cool_down(router: ModelRouter) -> None:
    router.cooldown_s = 0.2
    router.report_failure("text-cheap")
    assert router.route("auto", Needs("chat")).cards[0].id == "small-vlm"
    import time

    time.sleep(0.25)
    assert router.route("auto", Needs("chat")).cards[0].id == "text-cheap"


def test_output_limit_is_a_fit_criterion(router: ModelRouter) -> None:
    route = router.route("auto", Needs("chat", images=1, output_tokens=200))
    assert [c.id for c in route.cards] == ["big-vlm"] and "100 output tokens" in route.skipped["small-vlm"]


def test_router_specs_are_validated(tmp_path: Path) -> None:
    bad = CATALOG.replace("candidates: [big-vlm, small-vlm]", "candidates: [big-vlm, ghost]")
    with pytest.raises(CatalogError, match="ghost") as e:
        parse_catalog(bad, file="c.yaml", base_dir=tmp_path)
    assert e.value.model == "router vision-first" and e.value.field == "candidates"
    clash = CATALOG.replace("id: quick", "id: big-vlm")
    with pytest.raises(CatalogError, match="already"):
        parse_catalog(clash, file="c.yaml", base_dir=tmp_path)
