"""With MMSERVE_AUTH=true: the console asks for a key, refuses a wrong one, keeps the key in the tab
only, and shows a key only what it may see (its models, its usage; no admin pages)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.e2e.console.conftest import ADMIN_KEY, EXPECTED_401, ConsolePage
from tests.helpers.process import ServerProcess


def _create_key(server: ServerProcess, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "keys", "--data-dir", str(server.data_dir), "create", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def _sign_in(cp: ConsolePage, key: str) -> None:
    cp.page.goto(f"{cp.base}/console/#/catalog")
    cp.page.fill("input[name=key]", key)
    cp.page.click("button:text('Sign in')")


def _chat(server: ServerProcess, key: str) -> None:
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "demo-vlm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        timeout=60,
    )
    assert r.status_code == 200, r.text


def test_the_sign_in_form_comes_without_a_401_and_a_wrong_key_is_refused(auth_console: ConsolePage) -> None:
    page = auth_console.page
    statuses: list[tuple[str, int]] = []
    page.on("response", lambda r: statuses.append((r.url, r.status)))
    page.goto(f"{auth_console.base}/console/")
    page.wait_for_selector("form.signin")
    # the console asked /health whether a key is needed: nothing was refused, nothing logged
    assert any(u.endswith("/health") for u, _ in statuses) and all(code < 400 for _, code in statuses)
    assert auth_console.unexpected_errors() == []
    auth_console.allowed.append(EXPECTED_401)  # the wrong key's refusal, which the browser logs
    _sign_in(auth_console, "mms-not-a-real-key")
    page.wait_for_selector("form.signin .error")
    assert "Invalid API key" in page.locator("form.signin .error").inner_text()
    assert page.locator("#nav a").count() == 0
    assert page.evaluate("sessionStorage.getItem('mmserve.key')") is None
    assert "mms-" not in page.url
    auth_console.shot("refused")
    assert auth_console.unexpected_errors() == []


def test_a_key_sees_only_its_models_and_its_usage(auth_console: ConsolePage, auth_server: ServerProcess) -> None:
    mine = _create_key(auth_server, "--name", "team-a", "--models", "demo-vlm")
    other = _create_key(auth_server, "--name", "team-b")
    _chat(auth_server, mine["key"])
    _chat(auth_server, other["key"])
    page = auth_console.page
    requests: list[tuple[str, str | None]] = []
    page.goto(f"{auth_console.base}/console/#/catalog")
    page.wait_for_selector("form.signin")
    page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
    page.fill("input[name=key]", mine["key"])
    page.click("button:text('Sign in')")
    page.wait_for_selector("#page-catalog h1")
    assert page.locator("article.model").all_inner_texts()[0].startswith("demo-vlm")
    assert page.locator("article.model").count() == 1
    assert page.locator("#nav a").all_inner_texts() == [
        "Catalog",
        "Chat",
        "Images",
        "Speech",
        "Transcribe",
        "Video",
        "Compare",
        "Usage",
    ]
    page.goto(f"{auth_console.base}/console/#/usage")
    page.wait_for_selector("table.usage tbody tr")
    rows = page.locator("table.usage tbody tr")
    assert {rows.nth(i).get_attribute("data-key") for i in range(rows.count())} == {mine["id"]}
    assert rows.first.locator("td").first.inner_text().startswith("team-a")  # the key's name, from the API
    assert other["id"] not in page.locator("main").inner_text() and "team-b" not in page.locator("main").inner_text()
    # the charts: one bar (this hour, or today) per chart for the one model used
    assert page.locator(".charts svg rect").count() == 2
    assert page.locator(".legend").inner_text().strip() == "demo-vlm"
    page.select_option("select[name=range]", "24h")
    page.wait_for_function(
        "() => document.querySelector('.charts svg')?.getAttribute('aria-label') === 'cost per hour'"
    )
    assert page.locator(".charts svg rect").count() == 2
    assert "1" in page.locator("table.usage tbody tr td.num").first.inner_text()
    auth_console.shot("own-usage")
    # the key travels in the Authorization header of API calls only: never in a URL or local storage
    assert all(mine["key"] not in url for url, _ in requests)
    api_calls = [a for url, a in requests if "/v1/" in url]
    assert api_calls and all(a == f"Bearer {mine['key']}" for a in api_calls)
    assert page.evaluate("JSON.stringify(localStorage)").find(mine["key"]) == -1
    assert page.evaluate("sessionStorage.getItem('mmserve.key')") == mine["key"]
    assert auth_console.unexpected_errors() == []


def test_an_admin_creates_a_key_sees_its_secret_once_and_revokes_it(auth_console: ConsolePage) -> None:
    page = auth_console.page
    _sign_in(auth_console, ADMIN_KEY)
    page.wait_for_selector("#page-catalog h1")
    page.goto(f"{auth_console.base}/console/#/keys")
    page.wait_for_selector("table.keys")
    page.fill("input[name=name]", "from-console")
    page.fill("input[name=rpm]", "30")
    page.locator("fieldset.models input[value=demo-tts]").check()
    page.select_option("select[name=expires]", "2592000")  # 30 days
    page.click("button:text('Create key')")
    secret = page.locator("code.secret").inner_text()
    assert secret.startswith("mms-")
    row = page.locator("table.keys tr", has_text="from-console")
    row.wait_for()
    assert "demo-tts" in row.inner_text() and row.locator("input").first.input_value() == "30"
    listed = httpx.get(f"{auth_console.base}/v1/admin/keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    made = next(k for k in listed["data"] if k["name"] == "from-console")
    assert made["expires_at"] - made["created_at"] == pytest.approx(30 * 86400, abs=5)
    # the new key works, for its model only
    r = httpx.get(f"{auth_console.base}/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert [m["id"] for m in r.json()["data"]] == ["demo-tts"]
    auth_console.shot("created")
    page.click("button:text('Done')")
    assert page.locator("code.secret").count() == 0 and secret not in page.content()
    row.locator("button:text('Revoke')").click()
    row.locator("button:text('Really revoke?')").click()
    page.wait_for_function(
        "() => ![...document.querySelectorAll('table.keys tr')].some(r => r.textContent.includes('from-console'))"
    )
    assert auth_console.unexpected_errors() == []
