"""Every console page loads from the real server with nothing logged as an error, and stays small."""

from __future__ import annotations

import json

import pytest

from tests.e2e.console.conftest import SHOTS, ConsolePage

PAGES = ["catalog", "chat", "images", "speech", "transcribe", "video", "compare", "usage", "keys", "deployments"]
BUDGET_BYTES = 80_000  # all static files one page needs, uncompressed
BUDGET_TRANSFERRED = 25_000  # the same, as sent (gzip)


@pytest.mark.parametrize("route", PAGES)
def test_page_loads_without_console_errors(console: ConsolePage, route: str) -> None:
    sizes: dict[str, list[int]] = {}  # url: [bytes, bytes transferred]
    console.page.on(
        "requestfinished",
        lambda r: (
            "/console/" in r.url and sizes.__setitem__(r.url, [len(r.response().body()), r.sizes()["responseBodySize"]])
        ),
    )
    page = console.open(route)
    page.wait_for_load_state("networkidle")
    assert page.locator("main .error").count() == 0
    assert page.locator(f'#nav a[data-page="{route}"]').get_attribute("class") == "on"
    console.shot(route)
    assert console.unexpected_errors() == []
    total, sent = (sum(v[i] for v in sizes.values()) for i in (0, 1))
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / f"size-{route}.json").write_text(
        json.dumps({"bytes": total, "transferred": sent, "files": sizes}, indent=1)
    )
    assert total < BUDGET_BYTES and sent < BUDGET_TRANSFERRED, sizes


def test_catalog_filters_and_compares_models(console: ConsolePage) -> None:
    page = console.open("catalog")
    cards = page.locator("article.model")
    assert cards.count() == 8  # the demo catalog
    assert page.locator('article[data-model="demo-vlm"] .badge').inner_text() == "loaded"
    assert "$0.002 image" in page.locator('article[data-model="demo-image"]').inner_text()
    page.select_option("select[name=task]", "chat")
    assert cards.count() == 3  # demo-vlm, demo-tools, demo-audio
    page.select_option("select[name=capability]", "vision")
    assert cards.count() == 1
    page.select_option("select[name=task]", "")
    page.select_option("select[name=capability]", "")
    for model in ("demo-vlm", "demo-tools", "demo-image"):
        page.locator(f'article[data-model="{model}"] .pick input').check()
    table = page.locator(".compare-models table")
    assert table.locator("thead th").all_inner_texts()[1:] == ["demo-vlm", "demo-tools", "demo-image"]
    assert table.locator("tr.diff").count() > 5  # differing fields are marked
    price = table.locator("tr", has=page.locator("th:text-is('pricing.per_image')")).locator("td")
    assert price.all_inner_texts() == ["0", "0", "0.002"]
    console.shot("compare", full_page=False)
    # a long list (espeak-ng's voices) is shortened, with its length
    assert "in all)" in page.locator('article[data-model="demo-tts"] .pills').inner_text()
    assert console.unexpected_errors() == []


def test_deployments_load_and_unload_a_model(console: ConsolePage) -> None:
    page = console.open("deployments")
    row = page.locator('tr[data-model="demo-tools"]')
    assert row.locator(".runs-in").inner_text() == "here"  # the demo's models run in the server's process
    if row.locator(".badge").inner_text() == "loaded":  # another test used it first
        row.locator("button:text-is('Unload')").click()
        page.wait_for_function(
            "() => document.querySelector('tr[data-model=\"demo-tools\"] .badge').textContent === 'idle'"
        )
    row.locator("button:text-is('Load')").click()
    page.wait_for_function(
        "() => document.querySelector('tr[data-model=\"demo-tools\"] .badge').textContent === 'loaded'", timeout=60_000
    )
    assert "1 / 1" in row.inner_text()
    row.locator("button:text-is('Unload')").click()
    page.wait_for_function(
        "() => document.querySelector('tr[data-model=\"demo-tools\"] .badge').textContent === 'idle'"
    )
    console.shot("unloaded")
    assert console.unexpected_errors() == []
