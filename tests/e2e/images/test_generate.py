"""POST /v1/images/generations with the official openai SDK against the demo image model."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from tests.helpers.image_checks import decode_b64
from tests.helpers.server import LiveServer


@pytest.fixture
def client(images_base_url: str) -> OpenAI:
    return OpenAI(base_url=images_base_url, api_key="unused", max_retries=0)


def test_b64_json_is_a_png_of_the_requested_size(client: OpenAI) -> None:
    for size, (w, h) in (("256x256", (256, 256)), ("1024x768", (1024, 768))):
        resp = client.images.generate(model="demo-image", prompt="A sunset over mountains", size=size, quality="low")
        assert len(resp.data) == 1
        img = decode_b64(resp.data[0].b64_json)
        assert img.format == "PNG" and img.size == (w, h) and img.mode == "RGB"
        assert resp.size == size and resp.output_format == "png" and resp.background == "opaque"
        assert resp.data[0].url is None
        lo, hi = img.convert("L").getextrema()
        assert hi - lo > 20  # a real decoded image, not a flat fill
        assert resp.usage is not None and resp.usage.input_tokens > 0
        assert resp.usage.total_tokens == resp.usage.input_tokens
        assert resp.model_extra is not None


def test_usage_counts_images_for_metering(client: OpenAI) -> None:
    resp = client.images.generate(model="demo-image", prompt="Two cats", size="256x256", n=3, quality="low")
    assert resp.usage is not None
    assert resp.usage.model_dump()["images"] == 3
    # the prompt "Two cats" is <start> two cats <end> for the CLIP tokenizer
    assert resp.usage.input_tokens == 4


def test_url_downloads_the_same_image(client: OpenAI) -> None:
    b64 = client.images.generate(model="demo-image", prompt="A red fox", size="256x256", extra_body={"seed": 11})
    url = client.images.generate(
        model="demo-image", prompt="A red fox", size="256x256", response_format="url", extra_body={"seed": 11}
    )
    link = url.data[0].url
    assert link and link.startswith("http://127.0.0.1:") and "/v1/artifacts/art_" in link and "signature=" in link
    assert url.data[0].b64_json is None
    got = httpx.get(link, timeout=30)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content == decode_b64_bytes(b64.data[0].b64_json)
    # a tampered link is refused
    assert httpx.get(link.replace("signature=", "signature=0"), timeout=30).status_code == 403


def decode_b64_bytes(b64: str | None) -> bytes:
    import base64

    assert b64
    return base64.b64decode(b64)


def test_url_behind_a_reverse_proxy(image_server: LiveServer) -> None:
    body = {"model": "demo-image", "prompt": "x", "size": "256x256", "quality": "low", "response_format": "url"}
    headers = {"X-Forwarded-Host": "images.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/mm"}
    resp = httpx.post(f"{image_server.url}/v1/images/generations", json=body, headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    link = resp.json()["data"][0]["url"]
    assert link.startswith("https://images.example.com/mm/v1/artifacts/art_")
    # the proxy would strip the prefix: the same path and query on the server itself serve the file
    local = image_server.url + link.removeprefix("https://images.example.com/mm")
    assert Image.open(io.BytesIO(httpx.get(local, timeout=30).content)).size == (256, 256)


def test_n_2_gives_two_different_images(client: OpenAI) -> None:
    resp = client.images.generate(model="demo-image", prompt="Mountains", size="256x256", n=2, quality="low")
    a, b = (decode_b64(d.b64_json) for d in resp.data)
    assert a.size == b.size == (256, 256)
    assert a.tobytes() != b.tobytes()
    assert resp.usage is not None and resp.usage.model_dump()["images"] == 2


@pytest.mark.parametrize(("fmt", "pil"), [("jpeg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_output_formats(client: OpenAI, fmt: str, pil: str) -> None:
    resp = client.images.generate(
        model="demo-image",
        prompt="A lake",
        size="512x512",
        output_format=fmt,
        quality="low",  # type: ignore[arg-type]
    )
    img = decode_b64(resp.data[0].b64_json)
    assert img.format == pil and img.size == (512, 512)
    assert resp.output_format == fmt


def test_output_compression_shrinks_jpeg(client: OpenAI) -> None:
    sizes = []
    for compression in (100, 20):
        resp = client.images.generate(
            model="demo-image",
            prompt="A lake",
            size="512x512",
            output_format="jpeg",
            output_compression=compression,
            extra_body={"seed": 5, "steps": 1},
        )
        sizes.append(len(decode_b64_bytes(resp.data[0].b64_json)))
    assert sizes[1] < sizes[0] / 2


def test_seeded_generations_are_reproducible_under_concurrency(client: OpenAI) -> None:
    def gen(seed: int) -> bytes:
        resp = client.images.generate(
            model="demo-image", prompt="A lighthouse", size="256x256", n=2, extra_body={"seed": seed}
        )
        return b"|".join(decode_b64_bytes(d.b64_json) for d in resp.data)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(gen, [42, 42, 7, 42]))
    assert results[0] == results[1] == results[3]
    assert results[2] != results[0]


def test_quality_maps_to_steps_and_extensions_are_honoured(client: OpenAI) -> None:
    low = client.images.generate(model="demo-image", prompt="A tree", size="256x256", quality="low")
    hd = client.images.generate(model="demo-image", prompt="A tree", size="256x256", quality="hd")
    assert (low.quality, hd.quality) == ("low", "high")
    base = {"seed": 3, "steps": 2}
    a = client.images.generate(model="demo-image", prompt="A tree", size="256x256", extra_body=base)
    b = client.images.generate(
        model="demo-image", prompt="A tree", size="256x256", extra_body={**base, "negative_prompt": "blurry"}
    )
    c = client.images.generate(
        model="demo-image", prompt="A tree", size="256x256", extra_body={**base, "guidance_scale": 1.0}
    )
    d = client.images.generate(model="demo-image", prompt="A tree", size="256x256", extra_body={"seed": 3, "steps": 3})
    imgs = [decode_b64_bytes(r.data[0].b64_json) for r in (a, b, c, d)]
    assert len(set(imgs)) == 4  # each extension changes the result for the same seed
    assert a.quality is None  # explicit steps: no quality level


def test_default_model_and_size(client: OpenAI) -> None:
    resp = client.images.generate(prompt="A boat", quality="low")  # no model, no size
    assert resp.size == "512x512"  # demo-image: its first listed size
    assert decode_b64(resp.data[0].b64_json).size == (512, 512)


def test_free_size_card_takes_any_size_within_its_pixels(client: OpenAI) -> None:
    resp = client.images.generate(model="free-size-image", prompt="A road", size="320x192")
    assert decode_b64(resp.data[0].b64_json).size == (320, 192)


def test_the_cost_comes_in_a_header_and_in_usage(client: OpenAI) -> None:
    raw = client.images.with_raw_response.generate(
        model="demo-image", prompt="Two cats", size="256x256", n=2, quality="low"
    )
    assert raw.headers["x-mmserve-cost"] == "0.004"  # 2 images at $0.002
    assert raw.parse().usage.model_dump()["cost"] == pytest.approx(0.004)  # type: ignore[union-attr]
