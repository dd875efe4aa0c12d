"""The request body cap answers 413 in the OpenAI envelope, declared or streamed, and harms nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mmserve.api.app import create_app
from mmserve.catalog.catalog import Catalog
from mmserve.settings import LimitSettings, Settings
from tests.helpers.server import LiveServer


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("limit"), limits=LimitSettings(max_request_bytes=1000))
    server = LiveServer(create_app(settings, Catalog([], base_dir=Path(".")))).start()
    yield server.url
    server.stop()


def _assert_413(r: httpx.Response) -> None:
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["code"] == "request_too_large" and "1000 bytes" in err["message"]


def test_declared_content_length_over_cap(url: str) -> None:
    _assert_413(
        httpx.post(f"{url}/v1/chat/completions", content=b"x" * 5000, headers={"content-type": "application/json"})
    )


def test_streamed_body_over_cap(url: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 500

    _assert_413(
        httpx.post(f"{url}/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    )


def test_small_bodies_pass_and_server_keeps_answering(url: str) -> None:
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "x", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404  # reached the app: no such model here
    assert httpx.get(f"{url}/health").status_code == 200
