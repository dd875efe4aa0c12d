"""kill -9 right after responses end: every request that got its response has its usage record."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.fake_provider import FakeProvider
from tests.helpers.process import ServerProcess


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    fake.server.start()
    yield fake
    fake.server.stop()


def _catalog(path: Path, provider_url: str) -> Path:
    path.write_text(
        "models:\n  - id: remote\n    task: chat\n    engine: upstream-chat\n"
        f"    options: {{base_url: '{provider_url}/v1', model: their-model, api_key_env: DUR_PROVIDER_KEY}}\n"
        "    pricing: {input_per_1m_tokens: 1.0, output_per_1m_tokens: 2.0}\n"
        "    deployment: {mode: dedicated, max_concurrency: 32}\n"
    )
    return path


@pytest.mark.slow
def test_kill_9_right_after_responses_loses_no_usage_record(tmp_path: Path, provider: FakeProvider) -> None:
    # a long batch window: before the fix, every record of these requests was only in memory
    env = {"DUR_PROVIDER_KEY": "sk-upstream", "MMSERVE_USAGE_FLUSH_INTERVAL_S": "60"}
    server = ServerProcess(tmp_path / "data", _catalog(tmp_path / "catalog.yaml", provider.server.url), env=env)
    server.start(wait_for=["remote"])
    body = {"model": "remote", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 4}
    try:

        def ask(i: int) -> int:
            stream = i % 2 == 1
            r = httpx.post(f"{server.url}/v1/chat/completions", json={**body, "stream": stream}, timeout=30)
            return r.status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(ask, range(40)))
        assert statuses == [200] * 40
        server.kill9()  # within milliseconds of the last response
        server.start(wait_for=["remote"])
        usage = httpx.get(f"{server.url}/v1/usage", timeout=30).json()
        assert usage["total"]["requests"] == 40, usage
        assert usage["total"]["input_tokens"] > 0 and usage["total"]["cost"] > 0
        # replayed once: a second restart does not count them again
        server.stop()
        server.start(wait_for=["remote"])
        assert httpx.get(f"{server.url}/v1/usage", timeout=30).json()["total"]["requests"] == 40
    finally:
        server.stop()
