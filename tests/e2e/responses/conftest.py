"""The Responses API runs on the live formats server (tests/e2e/conftest.py): scripted Qwen3-style models."""

from __future__ import annotations

import pytest
from openai import OpenAI

from tests.helpers.server import LiveServer


@pytest.fixture
def client(formats_server: LiveServer) -> OpenAI:
    return OpenAI(base_url=formats_server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def url(formats_server: LiveServer) -> str:
    return formats_server.url + "/v1"
