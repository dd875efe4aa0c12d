"""POST /v1/embeddings through the openai SDK: text encoders, CLIP-style text + images, dimensions, usage."""

from __future__ import annotations

import base64
import math

import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.helpers.httpserver import TargetServer
from tests.helpers.images import data_uri, image_bytes


@pytest.fixture(scope="module")
def client(embed_url: str) -> OpenAI:
    return OpenAI(base_url=embed_url, api_key="unused", max_retries=0)


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def test_sdk_default_base64_and_float_give_the_same_unit_vector(client: OpenAI) -> None:
    b64 = client.embeddings.create(model="text-embed", input="The cat sits on a red couch.")  # SDK asks base64
    flt = client.embeddings.create(model="text-embed", input="The cat sits on a red couch.", encoding_format="float")
    assert b64.object == "list" and b64.model == "text-embed" and len(b64.data) == 1
    vec = b64.data[0].embedding
    assert len(vec) == 64 and vec == flt.data[0].embedding
    assert abs(_norm(vec) - 1) < 1e-5
    assert b64.usage.prompt_tokens == b64.usage.total_tokens > 2


def test_raw_base64_is_little_endian_float32(embed_url: str) -> None:
    body = {"model": "text-embed", "input": ["hello"], "encoding_format": "base64"}
    raw = httpx.post(f"{embed_url}/embeddings", json=body, timeout=60).json()["data"][0]["embedding"]
    flt = httpx.post(f"{embed_url}/embeddings", json={**body, "encoding_format": "float"}, timeout=60).json()
    assert np.frombuffer(base64.b64decode(raw), dtype="<f4").tolist() == flt["data"][0]["embedding"]


def test_a_batch_keeps_order_and_matches_inputs_embedded_alone(client: OpenAI) -> None:
    texts = ["A picture is worth a thousand words.", "Hi", "Mountains, rivers and a sunset over the sea."]
    batch = client.embeddings.create(model="text-embed", input=texts)
    assert [d.index for d in batch.data] == [0, 1, 2]
    alone = [client.embeddings.create(model="text-embed", input=t) for t in texts]
    for row, one in zip(batch.data, alone, strict=True):
        assert np.allclose(row.embedding, one.data[0].embedding, atol=1e-5)
    assert batch.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in alone)
    assert not np.allclose(batch.data[0].embedding, batch.data[2].embedding, atol=1e-3)


def test_token_ids_embed_like_their_text(client: OpenAI, embed_server) -> None:
    engine = embed_server.app.state.mm.runtime.deployments["text-embed"].engine
    ids = engine.tokenizer("The quick brown fox", add_special_tokens=False)["input_ids"]
    text = client.embeddings.create(model="text-embed", input="The quick brown fox")
    one = client.embeddings.create(model="text-embed", input=ids)
    many = client.embeddings.create(model="text-embed", input=[ids, ids[:2]])
    assert np.allclose(one.data[0].embedding, text.data[0].embedding, atol=1e-6)
    assert np.allclose(many.data[0].embedding, text.data[0].embedding, atol=1e-6) and len(many.data) == 2
    assert one.usage.prompt_tokens == text.usage.prompt_tokens == len(ids) + 2  # [CLS] ... [SEP]


def test_pooling_is_the_cards_choice(client: OpenAI) -> None:
    mean = client.embeddings.create(model="text-embed", input="The cat").data[0].embedding
    cls = client.embeddings.create(model="text-embed-cls", input="The cat").data[0].embedding
    assert len(mean) == len(cls) == 64 and not np.allclose(mean, cls, atol=1e-3)


def test_dimensions_cut_and_renormalise(client: OpenAI) -> None:
    full = np.array(client.embeddings.create(model="text-embed", input="hello there").data[0].embedding)
    short = client.embeddings.create(model="text-embed", input="hello there", dimensions=16).data[0].embedding
    assert len(short) == 16 and abs(_norm(short) - 1) < 1e-5
    assert np.allclose(short, full[:16] / np.linalg.norm(full[:16]), atol=1e-5)
    same = client.embeddings.create(model="text-embed-cls", input="hi", dimensions=64)  # its own length: fine
    assert len(same.data[0].embedding) == 64


def test_clip_card_embeds_text_and_images_in_one_space(client: OpenAI) -> None:
    red, blue = data_uri((64, 48), (220, 20, 20)), data_uri((80, 80), (20, 20, 220))
    r = client.embeddings.create(
        model="demo-embed",
        input=[
            "a red square",
            {"type": "image_url", "image_url": {"url": red}},
            {"image": blue},  # Jina-style item
            {"type": "text", "text": "a red square"},
        ],
    )
    vecs = [np.array(d.embedding) for d in r.data]
    assert [len(v) for v in vecs] == [32] * 4
    assert np.allclose(vecs[0], vecs[3], atol=1e-6)  # the same text, either spelling
    assert not np.allclose(vecs[1], vecs[2], atol=1e-3)  # different pictures
    alone = client.embeddings.create(model="demo-embed", input=[{"type": "image_url", "image_url": red}])
    assert np.allclose(alone.data[0].embedding, vecs[1], atol=1e-5)
    assert r.usage.prompt_tokens > 0 and r.usage.model_extra["images"] == 2  # type: ignore[index]


def test_image_urls_are_fetched(client: OpenAI) -> None:
    png = image_bytes((64, 64), (10, 200, 10))
    with TargetServer() as target:
        target.routes["/green.png"] = (200, {"Content-Type": "image/png"}, png)
        by_url = client.embeddings.create(
            model="demo-embed", input=[{"type": "image_url", "image_url": {"url": target.url("/green.png")}}]
        )
    inline = client.embeddings.create(
        model="demo-embed", input=[{"type": "image_url", "image_url": {"url": data_uri((64, 64), (10, 200, 10))}}]
    )
    assert np.allclose(by_url.data[0].embedding, inline.data[0].embedding, atol=1e-6)


def test_auto_routes_text_to_the_cheapest_and_images_to_the_clip_card(embed_url: str) -> None:
    text = httpx.post(f"{embed_url}/embeddings", json={"model": "auto", "input": "hello"}, timeout=60)
    assert text.status_code == 200 and text.json()["model"] == "text-embed"
    image = {"model": "auto", "input": [{"type": "image_url", "image_url": {"url": data_uri()}}]}
    r = httpx.post(f"{embed_url}/embeddings", json=image, timeout=60)
    assert r.status_code == 200 and r.json()["model"] == "demo-embed"
    assert "no vision" in r.headers["x-mmserve-route"] or "skipped" in r.headers["x-mmserve-route"]
    short = httpx.post(f"{embed_url}/embeddings", json={"model": "auto", "input": "x", "dimensions": 50}, timeout=60)
    assert short.json()["model"] == "text-embed"  # 50 > demo-embed's 32; text-embed-cls cannot shorten


def test_usage_is_metered_per_token_and_per_image(embed_url: str) -> None:
    def totals() -> dict:
        return httpx.get(f"{embed_url}/usage", params={"model": "demo-embed"}, timeout=30).json()["total"]

    before = totals()
    body = {"model": "demo-embed", "input": ["hello world", {"image": data_uri()}, {"image": data_uri()}]}
    r = httpx.post(f"{embed_url}/embeddings", json=body, timeout=60).json()
    after = totals()
    tokens = r["usage"]["prompt_tokens"]
    assert after["requests"] - before["requests"] == 1
    assert after["input_tokens"] - before["input_tokens"] == tokens
    assert after["images"] - before["images"] == 2
    assert after["cost"] - before["cost"] == pytest.approx(tokens * 0.02 / 1e6 + 2 * 0.0001)


def test_models_lists_embedding_cards(embed_url: str) -> None:
    data = httpx.get(f"{embed_url}/models", params={"task": "embedding"}, timeout=30).json()["data"]
    assert {m["id"] for m in data} == {"demo-embed", "text-embed", "text-embed-cls"}
    clip = next(m for m in data if m["id"] == "demo-embed")
    assert clip["capabilities"]["vision"] and clip["capabilities"]["embedding_dimensions"] == 32
    assert clip["pricing"]["per_image"] == 0.0001
    vision = httpx.get(f"{embed_url}/models", params={"task": "embedding", "capability": "vision"}, timeout=30)
    assert [m["id"] for m in vision.json()["data"]] == ["demo-embed"]
