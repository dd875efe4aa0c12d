"""Probes on a live server: /health (liveness) answers while models load, /ready (readiness) once
every kept model is loaded; neither needs a key, and a model that failed keeps /ready at 503."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.control.keys import KeyStore
from mmserve.db import Database
from mmserve.settings import Settings
from tests.helpers import load_gate
from tests.helpers.server import LiveServer

TEXT = {"task": "chat", "engine": "transformers-chat", "source": "demo:text-lm", "limits": {"max_output_tokens": 4}}
SPEECH = {"id": "speech", "task": "speech", "engine": "espeak-ng", "deployment": {"mode": "dedicated"}}


def _listening(data_dir: Path, name: str, cards: list[dict]) -> LiveServer:
    """A live server with auth on, returned once it listens (not once its models are loaded)."""
    path = data_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"models": cards}))
    settings = Settings(data_dir=data_dir, config=path, auth=True)
    server = LiveServer(create_app(settings, load_catalog(path)))
    server.thread.start()
    deadline = time.monotonic() + 60
    while not server.server.started:
        assert time.monotonic() < deadline and server.thread.is_alive(), "server did not start"
        time.sleep(0.02)
    return server


def _poll(url: str, until: int, timeout: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while (r := httpx.get(url, timeout=10)).status_code != until:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.05)
    return r


@pytest.fixture
def gated(data_dir: Path) -> Iterator[LiveServer]:
    load_gate.GATE.clear()
    card = {**TEXT, "id": "gated", "options": {"logits_processors": ["tests.helpers.load_gate:gated"]}}
    server = _listening(data_dir, "probes-gated", [{**card, "deployment": {"mode": "dedicated"}}, SPEECH])
    try:
        yield server
    finally:
        load_gate.GATE.set()
        server.stop()


def test_health_answers_while_a_model_loads_and_ready_once_loaded(gated: LiveServer) -> None:
    health = httpx.get(f"{gated.url}/health", timeout=10)  # no key: probes are open
    assert health.status_code == 200 and health.json()["models"]["gated"] == "loading"
    not_ready = httpx.get(f"{gated.url}/ready", timeout=10)
    assert not_ready.status_code == 503 and not_ready.headers["retry-after"]
    assert not_ready.json()["status"] == "starting" and "gated" in not_ready.json()["waiting_for"]
    # everything else already needs a key, as always
    assert httpx.get(f"{gated.url}/v1/models", timeout=10).status_code == 401

    load_gate.GATE.set()
    ready = _poll(f"{gated.url}/ready", 200)
    assert ready.json() == {"status": "ready", "models": {"gated": "loaded", "speech": "loaded"}}


def test_a_request_during_loading_waits_for_the_model(gated: LiveServer, data_dir: Path) -> None:
    key = asyncio.run(_make_key(Database.from_settings(Settings(data_dir=data_dir))))
    client = openai.OpenAI(base_url=gated.url + "/v1", api_key=key, max_retries=0)
    answers: list[str | None] = []
    thread = threading.Thread(
        target=lambda: answers.append(
            client.chat.completions.create(model="gated", messages=[{"role": "user", "content": "hi"}])
            .choices[0]
            .finish_reason
        )
    )
    thread.start()
    time.sleep(0.3)
    assert not answers  # waiting for the load, not refused
    load_gate.GATE.set()
    thread.join(timeout=120)
    assert answers and answers[0] in ("stop", "length")


async def _make_key(db: Database) -> str:
    try:
        _, secret = await KeyStore(db).create(name="probes")
        return secret
    finally:
        await db.dispose()


def test_a_model_that_failed_to_load_keeps_ready_at_503(data_dir: Path) -> None:
    broken = {**TEXT, "id": "broken", "options": {"logits_processors": ["tests.helpers.load_gate:nothing"]}}
    server = _listening(data_dir, "probes-broken", [{**broken, "deployment": {"mode": "dedicated"}}, SPEECH])
    try:
        deadline = time.monotonic() + 120
        while (r := httpx.get(f"{server.url}/ready", timeout=10)).json()["status"] == "starting":
            assert r.status_code == 503 and time.monotonic() < deadline
            time.sleep(0.05)
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable" and r.json()["waiting_for"] == ["broken"]
        assert r.json()["models"] == {"broken": "failed", "speech": "loaded"}
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200  # alive all the same
    finally:
        server.stop()
