"""The server answers its probes while the app is still being imported and started (api/boot.py).

A real uvicorn server (mmserve's protocol and config) serves :class:`Booting`; the build is held
on an event so that the probes can be asked while it has not finished."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
import yaml

from mmserve.api.app import create_app
from mmserve.api.boot import Booting
from mmserve.api.server import uvicorn_config
from mmserve.catalog.loader import load_catalog
from mmserve.control.usage import UsageRecorder
from mmserve.db import Database
from mmserve.settings import Settings
from tests.helpers.server import free_port

SPEECH = {"id": "speech", "task": "speech", "engine": "espeak-ng", "deployment": {"mode": "dedicated"}}
TTS = {"id": "tts", "task": "speech", "engine": "espeak-ng"}


class Booted:
    """uvicorn serving Booting(build) on a free loopback port, in a thread; ``release`` lets the build go on."""

    def __init__(self, settings: Settings, build: Any) -> None:
        self.release = threading.Event()
        self.failures: list[str] = []

        def held() -> Any:
            assert self.release.wait(60), "the test never released the build"
            return build()

        self.booting = Booting(
            held,
            models={"speech": "loading", "tts": "idle"},
            auth=settings.auth,
            on_failure=lambda: self.failures.append("failed"),
        )
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn_config(self.booting, settings, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.release.set()
        self.server.should_exit = True
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    data_dir = tmp_path  # a database of its own: the usage totals below are this test's alone
    path = data_dir / "boot.yaml"
    path.write_text(yaml.safe_dump({"models": [SPEECH, TTS]}))
    # batches written rarely and no journal: only the app's own shutdown writes a request's usage
    return Settings(data_dir=data_dir, config=path, usage_flush_interval_s=3600, usage_journal=False)


@pytest.fixture
def booted(settings: Settings) -> Iterator[Booted]:
    server = Booted(settings, lambda: create_app(settings, load_catalog(settings.config)))
    try:
        yield server
    finally:
        server.stop()


def test_probes_answer_before_the_app_is_built_and_requests_wait_for_it(booted: Booted) -> None:
    health = httpx.get(f"{booted.url}/health", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"status": "starting", "auth": False, "models": {"speech": "loading", "tts": "idle"}}
    ready = httpx.get(f"{booted.url}/ready", timeout=5)
    assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
    assert ready.json()["status"] == "starting" and ready.json()["waiting_for"] == ["speech"]

    answers: list[int] = []
    waiting = threading.Thread(
        target=lambda: answers.append(httpx.get(f"{booted.url}/v1/models", timeout=60).status_code)
    )
    waiting.start()
    time.sleep(0.3)
    assert not answers  # waits for the app, not refused
    booted.release.set()
    waiting.join(timeout=60)
    assert answers == [200]

    # the app answers from now on: its own probes, its models' real states
    deadline = time.monotonic() + 60
    while (r := httpx.get(f"{booted.url}/ready", timeout=5)).status_code != 200:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.05)
    assert httpx.get(f"{booted.url}/health", timeout=5).json()["status"] == "ok"
    assert r.json()["models"] == {"speech": "loaded", "tts": "idle"}


def test_the_apps_shutdown_runs_when_the_server_stops(booted: Booted, settings: Settings) -> None:
    booted.release.set()
    client = openai.OpenAI(base_url=booted.url + "/v1", api_key="none", max_retries=0)
    audio = client.audio.speech.create(model="speech", input="hello there", voice="alloy", response_format="wav")
    assert audio.content[:4] == b"RIFF"
    booted.stop()  # the usage record is still in the recorder's batch: the app's shutdown flushes it

    async def totals() -> list[dict[str, Any]]:
        db = Database.from_settings(settings)
        try:
            return await UsageRecorder(db).totals(key_id=None, all_keys=True, start=None, end=None, model=None)
        finally:
            await db.dispose()

    rows = asyncio.run(totals())
    assert [(r["model"], r["requests"]) for r in rows] == [("speech", 1)]


def test_a_build_that_fails_stops_the_server_and_answers_waiting_requests(settings: Settings) -> None:
    def broken() -> Any:
        raise RuntimeError("the database cannot be reached")

    server = Booted(settings, broken)
    try:
        answers: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: answers.append(httpx.get(f"{server.url}/v1/models", timeout=60)))
        waiting.start()
        time.sleep(0.3)
        server.release.set()
        waiting.join(timeout=60)
        assert answers and answers[0].status_code == 503
        assert answers[0].json()["error"]["code"] == "unavailable"
        assert "failed to start" in answers[0].json()["error"]["message"]
        assert server.failures == ["failed"]
    finally:
        server.stop()
