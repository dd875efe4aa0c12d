"""Image cards on a third-party provider through the openai SDK against `mmserve serve`: generations,
edits, links re-served, SSRF refusals, retries, errors, usage and fallback both ways."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.helpers.fake_provider import FakeProvider
from tests.helpers.fake_provider_media import IMAGE_OUTPUT_TOKENS
from tests.helpers.process import ServerProcess
from tests.helpers.upstream import usage_of

RED = (200, 30, 30)  # the fake's generations
BLUE = (30, 30, 200)  # its edits


@pytest.fixture(scope="module")
def client(upstream_server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=upstream_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _image(b64: str | None) -> Image.Image:
    assert b64
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def _gen(client: OpenAI, model: str, **kw: Any) -> tuple[Any, httpx.Headers]:
    raw = client.images.with_raw_response.generate(model=model, prompt=kw.pop("prompt", "a red square"), **kw)
    return raw.parse(), raw.headers


def test_generations_are_the_providers_with_its_usage_and_cost(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess
) -> None:
    before = usage_of(upstream_server.url, "remote-image", 0)
    r, headers = _gen(client, "remote-image", prompt="a red square on white", n=2, size="64x64")
    assert headers["x-mmserve-model"] == "remote-image" and headers["x-mmserve-route"] == "requested"
    sent = upstream.requests[-1]
    assert sent == {
        "model": "their-image",
        "prompt": "a red square on white",
        "n": 2,
        "size": "64x64",
        "output_format": "png",
    }
    assert len(r.data) == 2
    for item in r.data:
        img = _image(item.b64_json)
        assert img.format == "PNG" and img.size == (64, 64) and img.getpixel((5, 5)) == RED
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens) == (5, 2 * IMAGE_OUTPUT_TOKENS)  # what the fake reported
    after = usage_of(upstream_server.url, "remote-image", before["requests"] + 1)
    assert after["images"] - before["images"] == 2
    assert after["input_tokens"] - before["input_tokens"] == 5
    assert after["output_tokens"] - before["output_tokens"] == 2 * IMAGE_OUTPUT_TOKENS
    cost = 2 * 0.04 + 5 * 5.0 / 1e6 + 2 * IMAGE_OUTPUT_TOKENS * 40.0 / 1e6  # per image + its tokens, card prices
    assert after["cost"] - before["cost"] == pytest.approx(cost)


def test_the_asked_format_is_the_providers_or_converted_by_mmserve(client: OpenAI, upstream: FakeProvider) -> None:
    r, _ = _gen(client, "remote-image", size="64x64", output_format="webp")
    assert upstream.requests[-1]["output_format"] == "webp"
    assert _image(r.data[0].b64_json).format == "WEBP"
    r, _ = _gen(client, "remote-image-pngonly", size="64x64", output_format="jpeg")
    assert "output_format" not in upstream.requests[-1]  # this provider has no such field: it answers PNG
    img = _image(r.data[0].b64_json)
    assert img.format == "JPEG" and img.size == (64, 64)
    assert all(abs(a - b) <= 8 for a, b in zip(img.convert("RGB").getpixel((5, 5)), RED, strict=True))


def test_links_the_provider_returns_are_fetched_and_served_by_mmserve(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess
) -> None:
    upstream.image_links = True
    files_before = sum(1 for _, path, _ in upstream.hits if path.startswith("/files/"))
    r, _ = _gen(client, "remote-image", size="48x32", response_format="url")
    url = r.data[0].url
    assert url and url.startswith(upstream_server.url + "/v1/artifacts/") and upstream.url not in url
    assert sum(1 for _, path, _ in upstream.hits if path.startswith("/files/")) == files_before + 1
    got = httpx.get(url, timeout=30)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(got.content))
    assert img.size == (48, 32) and img.convert("RGB").getpixel((1, 1)) == RED


@pytest.mark.parametrize("link_base", ["http://10.1.2.3", "http://169.254.169.254", "http://127.0.0.2:9"])
def test_a_link_to_a_private_address_is_refused(client: OpenAI, upstream: FakeProvider, link_base: str) -> None:
    upstream.image_links = True
    upstream.link_base = link_base
    with pytest.raises(openai.APIStatusError) as e:
        _gen(client, "remote-image", size="64x64")
    assert e.value.status_code == 502
    err: Any = e.value.body
    assert err["code"] == "upstream_bad_output" and "fakeai" in err["message"]
    assert "private, loopback, link-local or reserved address" in err["message"]
    assert link_base.split("//")[1].split(":")[0] not in err["message"]  # no address echoed


def test_edits_send_the_bounded_image_and_openais_alpha_mask(client: OpenAI, upstream: FakeProvider) -> None:
    photo = io.BytesIO()
    Image.new("RGB", (48, 32), (10, 200, 10)).save(photo, "JPEG")
    mask = Image.new("RGBA", (48, 32), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 24, 32))  # the left half is transparent: repaint it
    mask_png = io.BytesIO()
    mask.save(mask_png, "PNG")
    r = client.images.edit(
        model="remote-image",
        image=("photo.jpg", photo.getvalue(), "image/jpeg"),
        mask=("mask.png", mask_png.getvalue(), "image/png"),
        prompt="paint the left half",
    )
    sent = upstream.requests[-1]
    assert sent["model"] == "their-image" and sent["prompt"] == "paint the left half" and sent["size"] == "48x32"
    image, sent_mask = sent["files"]["image"], sent["files"]["mask"]
    assert image["size"] == (48, 32) and image["bytes"].startswith(b"\x89PNG")  # mmserve's re-encoding, not the JPEG
    assert sent_mask["mode"] == "RGBA" and sent_mask["size"] == (48, 32)
    alpha = Image.open(io.BytesIO(sent_mask["bytes"])).getchannel("A")
    assert alpha.getpixel((5, 5)) == 0 and alpha.getpixel((40, 5)) == 255
    img = _image(r.data[0].b64_json)
    assert img.size == (48, 32) and img.getpixel((1, 1)) == BLUE


def test_a_429_is_retried_after_its_retry_after(client: OpenAI, upstream: FakeProvider) -> None:
    upstream.fail_next(429, path="/v1/images", retry_after="1")
    since = len(upstream.hits)
    r, _ = _gen(client, "remote-image", size="64x64")
    assert _image(r.data[0].b64_json).getpixel((1, 1)) == RED
    hits = [h for h in upstream.hits[since:] if h[1] == "/v1/images/generations"]
    assert [h[2] for h in hits] == [429, 200] and hits[1][0] - hits[0][0] >= 0.99


def test_a_rate_limit_longer_than_mmserve_waits_is_a_503_with_the_providers_retry_after(
    client: OpenAI, upstream: FakeProvider
) -> None:
    upstream.fail_next(429, path="/v1/images", retry_after="90")
    with pytest.raises(openai.APIStatusError) as e:
        _gen(client, "remote-image", size="64x64")
    assert e.value.status_code == 503 and e.value.response.headers["retry-after"] == "90"
    err: Any = e.value.body
    assert err["code"] == "upstream_rate_limited" and upstream.key not in err["message"]


def test_a_failing_provider_is_a_502_naming_it_and_never_its_key(client: OpenAI, upstream: FakeProvider) -> None:
    upstream.fail_next(500, path="/v1/images", times=2)  # the card retries once
    with pytest.raises(openai.APIStatusError) as e:
        _gen(client, "remote-image", size="64x64")
    err: Any = e.value.body
    assert e.value.status_code == 502 and err["code"] == "upstream_error" and err["type"] == "server_error"
    assert "fakeai" in err["message"] and "HTTP 500" in err["message"]
    assert upstream.key not in err["message"] and "[key]" in err["message"]


def test_a_failing_provider_falls_back_to_the_local_model(client: OpenAI, upstream: FakeProvider) -> None:
    upstream.fail_next(500, path="/v1/images", times=2)
    r, headers = _gen(client, "images-remote-first", size="64x64")
    assert headers["x-mmserve-model"] == "local-image"
    assert "fell back from remote-image (upstream_error)" in headers["x-mmserve-route"]
    assert _image(r.data[0].b64_json).size == (64, 64)


def test_a_broken_local_model_falls_back_to_the_provider(client: OpenAI, upstream: FakeProvider) -> None:
    r, headers = _gen(client, "images-local-first", size="64x64")
    assert headers["x-mmserve-model"] == "remote-image"
    assert "priority" in headers["x-mmserve-route"] and "fell back from broken-image" in headers["x-mmserve-route"]
    assert _image(r.data[0].b64_json).getpixel((1, 1)) == RED
    photo = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(photo, "PNG")
    raw = client.images.with_raw_response.edit(
        model="images-local-first-2", image=("p.png", photo.getvalue(), "image/png"), prompt="x"
    )
    assert raw.headers["x-mmserve-model"] == "remote-image" and _image(raw.parse().data[0].b64_json).size == (64, 64)


def test_a_provider_slower_than_the_cards_timeout(client: OpenAI, upstream: FakeProvider) -> None:
    upstream.delay_s = 2
    with pytest.raises(openai.APIStatusError) as e:
        _gen(client, "remote-image-impatient", size="64x64")
    err: Any = e.value.body
    assert e.value.status_code == 504 and err["code"] == "upstream_timeout"
    _, headers = _gen(client, "images-slow-remote-first", size="64x64")
    assert headers["x-mmserve-model"] == "local-image"
    assert "fell back from remote-image-impatient (upstream_timeout)" in headers["x-mmserve-route"]


def test_the_cheapest_router_weighs_local_and_remote_prices(client: OpenAI, upstream: FakeProvider) -> None:
    _, headers = _gen(client, "images-cheapest", size="64x64")
    assert headers["x-mmserve-model"] == "local-image"  # 0.001 per image against the provider's 0.04
    assert "cheapest of 2 fitting" in headers["x-mmserve-route"]


def test_a_streamed_request_ends_with_the_providers_images_billed(
    client: OpenAI, upstream: FakeProvider, upstream_server: ServerProcess
) -> None:
    before = usage_of(upstream_server.url, "remote-image", 0)
    stream = client.images.generate(
        model="remote-image", prompt="a red square", size="64x64", n=2, stream=True, partial_images=1
    )
    events = list(stream)
    done = [e for e in events if e.type == "image_generation.completed"]
    assert len(done) == 2  # no previews: the provider is asked for finished images only
    for e in done:
        assert _image(e.b64_json).getpixel((1, 1)) == RED
    assert done[-1].usage.output_tokens == 2 * IMAGE_OUTPUT_TOKENS
    after = usage_of(upstream_server.url, "remote-image", before["requests"] + 1)
    assert after["images"] - before["images"] == 2
