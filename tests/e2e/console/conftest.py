"""Browser tests of the web console: a real `mmserve serve` process and headless Chromium (Playwright).

Chromium comes from the system (Debian: `apt-get install chromium`, which `.ci/run` does when it is
missing); Playwright (in the test extra) cannot download its own browsers on our machines. Without a
Chromium these tests fail, saying what to install: they are never skipped. Screenshots go to
$CONSOLE_SCREENSHOTS (default test-results/console/).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import sync_playwright

from tests.helpers.process import ServerProcess

CHROMIUM = os.environ.get("CONSOLE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # without these Chromium floods the closed network
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
DEMO_YAML = Path(str(resources.files("mmserve.catalog").joinpath("demo.yaml")))
SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", "test-results/console"))
# What a page may log when a test provokes it (a refused key): the browser reports the 401.
EXPECTED_401 = "the server responded with a status of 401"


ADMIN_KEY = "console-admin-secret"
OPEN_MODELS = ["demo-vlm", "demo-image", "demo-tts", "demo-video"]  # loaded before the tests start
AUTH_MODELS = ["demo-vlm", "demo-tts"]  # what the auth tests use: a smaller catalog starts sooner


def _launch(
    data: Path, models_dir: Path, env: dict[str, str] | None = None, catalog: Path = DEMO_YAML
) -> ServerProcess:
    data.mkdir(parents=True, exist_ok=True)
    if not (data / "models").exists():
        (data / "models").symlink_to(models_dir, target_is_directory=True)  # tiny models built once per session
    env = {"MMSERVE_JOBS__PROGRESS_INTERVAL_S": "0.1", "MMSERVE_USAGE_FLUSH_INTERVAL_S": "0.05", **(env or {})}
    return ServerProcess(data, catalog, env=env).launch()


@pytest.fixture(scope="package")
def launched(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[dict[str, ServerProcess]]:
    """Both servers of the console tests, started side by side (starting is most of these tests'
    time), and stopped when the console tests are done.

    ``open``: the demo catalog, auth off. ``auth``: two demo models, MMSERVE_AUTH=true and a
    bootstrap admin key.
    """
    data = tmp_path_factory.mktemp("console-auth")
    demo = yaml.safe_load(DEMO_YAML.read_text())["models"]
    catalog = data / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [c for c in demo if c["id"] in AUTH_MODELS]}))
    servers = {"open": _launch(tmp_path_factory.mktemp("console-open"), models_dir)}
    auth_env = {"MMSERVE_AUTH": "true", "MMSERVE_ADMIN_KEY": ADMIN_KEY, "MMSERVE_KEY_CACHE_TTL_S": "0.2"}
    servers["auth"] = _launch(data, models_dir, auth_env, catalog)
    yield servers
    for srv in servers.values():
        srv.stop()


@pytest.fixture(scope="package")
def server(launched: dict[str, ServerProcess]) -> ServerProcess:
    return launched["open"].wait_ready(OPEN_MODELS, timeout=300)


@pytest.fixture(scope="package")
def auth_server(launched: dict[str, ServerProcess]) -> ServerProcess:
    return launched["auth"].wait_ready(AUTH_MODELS, timeout=300)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system's: Playwright cannot download its own here).

    Package-scoped, like the servers: Playwright's sync API runs an event loop in this thread
    while it is open, and pytest-asyncio's tests after these would find it running.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does), or set CONSOLE_CHROMIUM.")
    with sync_playwright() as p:
        # launch() gives every run a fresh temporary profile (user-data-dir)
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class ConsolePage:
    """A page of a fresh browser context, recording what the browser logs as errors."""

    def __init__(self, page: Any, base: str, name: str) -> None:
        self.page = page
        self.base = base
        self.name = name
        self.errors: list[str] = []
        self.allowed: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, route: str) -> Any:
        self.page.goto(f"{self.base}/console/#/{route}")
        self.page.wait_for_selector(f"#page-{route} h1")
        return self.page

    def shot(self, label: str, *, full_page: bool = True) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{self.name}-{label}.png"
        self.page.evaluate("() => window.scrollTo(0, 0)")  # else the sticky header lands mid-page
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


def _page(browser: Any, base: str, request: pytest.FixtureRequest) -> Iterator[ConsolePage]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=False)
    context.set_default_timeout(60_000)
    cp = ConsolePage(context.new_page(), base, request.node.name.replace("[", "-").rstrip("]"))
    yield cp
    context.close()


@pytest.fixture
def console(browser: Any, server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[ConsolePage]:
    yield from _page(browser, server.url, request)


@pytest.fixture
def auth_console(browser: Any, auth_server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[ConsolePage]:
    yield from _page(browser, auth_server.url, request)
