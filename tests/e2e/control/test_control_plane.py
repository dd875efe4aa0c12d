"""Routing, fallback, serverless lifecycle and metrics through the openai SDK against a live server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import parse_catalog
from mmserve.settings import Settings
from tests.helpers.fake_provider import FakeProvider
from tests.helpers.images import data_uri
from tests.helpers.server import LiveServer


@pytest.fixture(scope="module")
def failing_provider() -> Iterator[FakeProvider]:
    with FakeProvider(fail_status=500) as p:
        yield p


@pytest.fixture(scope="module")
def server(failing_provider: FakeProvider, data_dir: Path) -> Iterator[LiveServer]:
    catalog = f"""
models:
  - id: vlm-a
    task: chat
    engine: transformers-chat
    source: "demo:vlm"
    capabilities: {{vision: true, max_images: 2}}
    pricing: {{input_per_1m_tokens: 5.0, output_per_1m_tokens: 15.0}}
    deployment: {{mode: dedicated}}
  - id: text-cheap
    task: chat
    engine: transformers-chat
    source: "demo:text-lm"
    pricing: {{input_per_1m_tokens: 0.05, output_per_1m_tokens: 0.1}}
    deployment: {{mode: serverless, idle_unload_s: 0.5}}
  - id: text-dear
    task: chat
    engine: transformers-chat
    source: "demo:text-lm"
    pricing: {{input_per_1m_tokens: 3.0, output_per_1m_tokens: 9.0}}
  - id: flaky-remote
    task: chat
    engine: upstream-chat
    options: {{base_url: "{failing_provider.base_url}", api_key_env: MMSERVE_TEST_FAKE_KEY}}
    pricing: {{input_per_1m_tokens: 0.01, output_per_1m_tokens: 0.01}}
routers:
  - id: resilient
    task: chat
    policy: priority
    candidates: [flaky-remote, text-dear]
"""
    import os

    os.environ["MMSERVE_TEST_FAKE_KEY"] = failing_provider.key
    settings = Settings(data_dir=data_dir, idle_check_interval_s=0.1, route_cooldown_s=0.0)
    srv = LiveServer(create_app(settings, parse_catalog(catalog, file="cp.yaml", base_dir=data_dir))).start()
    yield srv
    srv.stop()
    os.environ.pop("MMSERVE_TEST_FAKE_KEY", None)


@pytest.fixture
def client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def _ask(client: OpenAI, model: str, *, image: bool = False, **kw: object) -> openai.types.chat.ChatCompletion:
    content: object = "Hello there"
    if image:
        content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": data_uri()}}]
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": content}],  # type: ignore[arg-type]
        max_tokens=3,
        **kw,
    )  # type: ignore[arg-type]


def test_auto_routes_images_to_vision_and_text_to_the_cheapest(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        max_tokens=3,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": data_uri()}},
                ],
            }
        ],
    )
    r = raw.parse()
    assert r.model == "vlm-a"
    assert raw.headers["x-mmserve-model"] == "vlm-a"
    assert "cheapest" in raw.headers["x-mmserve-route"] and "text-cheap" in raw.headers["x-mmserve-route"]
    # flaky-remote is the cheapest of all but its provider is failing (and the cooldown is 0 here,
    # so it is tried every time): the request falls back to the cheapest local text card
    text = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Hello there"}], max_tokens=3
    )
    assert text.parse().model == "text-cheap"
    assert "fell back from flaky-remote" in text.headers["x-mmserve-route"]


def test_auto_without_fit_says_what_was_needed(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="auto",
            max_tokens=3,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri()}}] * 3}],
        )
    assert e.value.code == "no_model_fits" and "3 images" in str(e.value)


def test_alias_falls_back_when_the_first_candidate_fails(client: OpenAI, failing_provider: FakeProvider) -> None:
    before = len(failing_provider.requests)
    raw = client.chat.completions.with_raw_response.create(
        model="resilient", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert raw.parse().model == "text-dear"
    assert "fell back from flaky-remote" in raw.headers["x-mmserve-route"]
    # it was really tried (the upstream client retries a 5xx twice with backoff before giving up)
    assert before + 1 <= len(failing_provider.requests) <= before + 3
    chunks = list(
        client.chat.completions.create(
            model="resilient", messages=[{"role": "user", "content": "hi"}], max_tokens=2, stream=True
        )
    )
    assert {c.model for c in chunks} == {"text-dear"}
    # asking for the failing model by name does not fall back: the error is the answer
    with pytest.raises(openai.InternalServerError) as e:
        _ask(client, "flaky-remote")
    assert e.value.status_code == 502  # a bad gateway: the provider's 500, with the provider named
    assert "flaky-remote" in str(e.value)


def test_serverless_model_unloads_when_idle_and_reloads(client: OpenAI, server: LiveServer) -> None:
    def state() -> str:
        return str((client.models.retrieve("text-cheap").model_extra or {})["deployment"]["state"])

    first = _ask(client, "text-cheap", temperature=0)
    assert state() == "loaded"
    deadline = time.monotonic() + 10
    while state() != "idle" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state() == "idle"
    again = _ask(client, "text-cheap", temperature=0)
    assert again.choices[0].message.content == first.choices[0].message.content
    assert state() == "loaded"
    metrics = httpx.get(server.url + "/metrics").text
    cold = [ln for ln in metrics.splitlines() if ln.startswith('mmserve_cold_starts_total{model="text-cheap"}')]
    assert cold and float(cold[0].split()[-1]) >= 2
    assert 'mmserve_model_unloads_total{model="text-cheap",reason="idle"}' in metrics
    # the dedicated model never unloads
    assert (client.models.retrieve("vlm-a").model_extra or {})["deployment"]["state"] == "loaded"


def test_metrics_cover_requests_errors_latency_ttft_queue_and_loads(client: OpenAI, server: LiveServer) -> None:
    list(
        client.chat.completions.create(
            model="vlm-a", messages=[{"role": "user", "content": "hi"}], max_tokens=2, stream=True
        )
    )
    with pytest.raises(openai.NotFoundError):
        _ask(client, "missing-model")
    text = httpx.get(server.url + "/metrics").text
    for name in (
        'mmserve_requests_total{method="POST",route="/v1/chat/completions",status="200"}',
        'mmserve_request_errors_total{route="/v1/chat/completions",status="404"}',
        'mmserve_request_latency_seconds_count{route="/v1/chat/completions"}',
        'mmserve_time_to_first_token_seconds_count{model="vlm-a"}',
        'mmserve_queue_depth{model="vlm-a"}',
        'mmserve_loaded_replicas{model="vlm-a"} 1.0',
        'mmserve_model_load_seconds_count{model="vlm-a"}',
        'mmserve_model_requests_total{model="vlm-a",task="chat"}',
        'mmserve_tokens_total{kind="output",model="vlm-a"}',
    ):
        assert name in text, name


def test_models_filter_by_task_and_capability(client: OpenAI, server: LiveServer) -> None:
    vision = httpx.get(server.url + "/v1/models?task=chat&capability=vision").json()["data"]
    assert [m["id"] for m in vision] == ["vlm-a"]
    entry = vision[0]
    assert entry["pricing"]["input_per_1m_tokens"] == 5.0
    assert set(entry["deployment"]) >= {"mode", "replicas", "state", "replicas_loaded", "queue_depth", "active"}


def test_models_filter_unknown_capability_is_400(server: LiveServer) -> None:
    r = httpx.get(server.url + "/v1/models?capability=__class__")
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "capability" and "vision" in r.json()["error"]["message"]
