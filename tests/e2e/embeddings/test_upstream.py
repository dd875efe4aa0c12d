"""Embedding cards on a third-party provider through the openai SDK against `mmserve serve`: the
provider's vectors in input order, its token count metered and priced, dimensions, errors and
fallback both ways."""

from __future__ import annotations

from typing import Any

import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.helpers.fake_provider import FakeProvider
from tests.helpers.fake_provider_media import fake_embedding
from tests.helpers.images import data_uri
from tests.helpers.process import ServerProcess
from tests.helpers.upstream import usage_of


@pytest.fixture(scope="module")
def client(upstream_server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=upstream_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _embed(client: OpenAI, model: str, inputs: Any, **kw: Any) -> tuple[Any, Any]:
    raw = client.embeddings.with_raw_response.create(model=model, input=inputs, **kw)
    return raw.parse(), raw.headers


def test_vectors_are_the_providers_in_order_with_its_usage_and_cost(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess
) -> None:
    before = usage_of(upstream_server.url, "remote-embed", 0)
    texts = ["a red fox", "jumps over the lazy dog", "once"]
    r, headers = _embed(client, "remote-embed", texts)
    assert headers["x-mmserve-model"] == "remote-embed"
    sent = upstream.requests[-1]
    assert sent == {"model": "their-embed", "input": texts, "encoding_format": "base64"}
    assert [d.index for d in r.data] == [0, 1, 2]  # the fake answers in reverse: mmserve puts them in order
    for d, text in zip(r.data, texts, strict=True):
        assert np.allclose(d.embedding, fake_embedding(text, 32), atol=1e-6)
    assert r.usage.prompt_tokens == 3 + 5 + 1  # the fake counts words, not mmserve's estimate
    after = usage_of(upstream_server.url, "remote-embed", before["requests"] + 1)
    assert after["input_tokens"] - before["input_tokens"] == 9
    assert after["cost"] - before["cost"] == pytest.approx(9 * 0.13 / 1e6)


def test_float_providers_token_ids_and_dimensions(client: OpenAI, upstream: FakeProvider) -> None:
    r, _ = _embed(client, "remote-embed-float", "hello there", encoding_format="float")
    assert upstream.requests[-1]["encoding_format"] == "float"
    assert np.allclose(r.data[0].embedding, fake_embedding("hello there", 32), atol=1e-6)
    r, _ = _embed(client, "remote-embed", [[5, 6, 7]], dimensions=8)
    sent = upstream.requests[-1]
    assert sent["input"] == [[5, 6, 7]] and sent["dimensions"] == 8
    assert np.allclose(r.data[0].embedding, fake_embedding([5, 6, 7], 8), atol=1e-6)


def test_images_are_refused_before_the_provider_sees_them(client: OpenAI, upstream: FakeProvider) -> None:
    sent = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="remote-embed", input=[{"image": data_uri()}])  # type: ignore[list-item]
    err: Any = e.value.body
    assert err["param"].startswith("input[0]") and "text only" in err["message"]
    assert len(upstream.requests) == sent


def test_dimensions_a_card_cannot_shorten_and_a_failing_provider(client: OpenAI, upstream: FakeProvider) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        _embed(client, "remote-embed-float", "x", dimensions=8)  # this card is not matryoshka: mmserve refuses
    assert e.value.status_code == 400
    upstream.fail_next(500, path="/v1/embeddings", times=2)
    with pytest.raises(openai.APIStatusError) as e:
        _embed(client, "remote-embed", "x")
    err: Any = e.value.body
    assert e.value.status_code == 502 and err["code"] == "upstream_error" and "fakeai" in err["message"]
    assert upstream.key not in err["message"]


def test_a_failing_provider_falls_back_to_the_local_model(client: OpenAI, upstream: FakeProvider) -> None:
    upstream.fail_next(500, path="/v1/embeddings", times=2)
    r, headers = _embed(client, "embed-remote-first", ["a caption"])
    assert headers["x-mmserve-model"] == "local-embed"
    assert "fell back from remote-embed (upstream_error)" in headers["x-mmserve-route"]
    assert len(r.data[0].embedding) == 32
    assert not np.allclose(r.data[0].embedding, fake_embedding("a caption", 32), atol=1e-3)  # the local model's


def test_a_broken_local_model_falls_back_to_the_provider(client: OpenAI, upstream: FakeProvider) -> None:
    r, headers = _embed(client, "embed-local-first", ["a caption"])
    assert headers["x-mmserve-model"] == "remote-embed"
    assert "fell back from broken-embed" in headers["x-mmserve-route"]
    assert np.allclose(r.data[0].embedding, fake_embedding("a caption", 32), atol=1e-6)


def test_the_cheapest_router_weighs_local_and_remote_prices(client: OpenAI) -> None:
    _, headers = _embed(client, "embed-cheapest", ["a caption"])
    assert headers["x-mmserve-model"] == "local-embed"  # 0.02 per 1M tokens against the provider's 0.13
    assert "cheapest of 2 fitting" in headers["x-mmserve-route"]


def test_the_fastest_router_measures_the_provider_against_the_local_model(
    client: OpenAI, upstream: FakeProvider
) -> None:
    upstream.delay_s = 0.5  # the provider is slow today
    served = [_embed(client, "embed-fastest", ["a caption"])[1]["x-mmserve-model"] for _ in range(3)]
    assert served[0] == "remote-embed-timed"  # not yet measured: tried first
    _, headers = _embed(client, "embed-fastest", ["a caption"])
    assert headers["x-mmserve-model"] == "local-embed" and "fastest" in headers["x-mmserve-route"]
    assert served.count("remote-embed-timed") == 1  # once measured slow, never chosen again
