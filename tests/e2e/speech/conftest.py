"""The OpenAI client of the speech e2e tests (the server is in tests/e2e/conftest.py)."""

from __future__ import annotations

import pytest
from openai import OpenAI

from tests.helpers.server import LiveServer


@pytest.fixture(scope="session")
def client(audio_server: LiveServer) -> OpenAI:
    return OpenAI(base_url=audio_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
