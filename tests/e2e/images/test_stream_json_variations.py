"""Streaming partial images, JSON-body edits and variations, through the openai SDK (and plain JSON)."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.helpers.image_checks import alpha_mask, decode_b64, png_upload, same_up_to_batch_numerics
from tests.helpers.openapi import accepts, published
from tests.helpers.server import LiveServer


@pytest.fixture
def client(images_base_url: str) -> OpenAI:
    return OpenAI(base_url=images_base_url, api_key="unused", max_retries=0)


def _uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_generate_streams_partial_images_then_the_image(client: OpenAI) -> None:
    stream = client.images.generate(
        model="demo-image", prompt="a lighthouse", size="256x256", stream=True, partial_images=2, quality="high"
    )
    events = list(stream)
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]  # type: ignore[union-attr]
    images = [decode_b64(e.b64_json) for e in events]
    assert all(im.size == (256, 256) and im.format == "PNG" for im in images)
    assert len({im.tobytes() for im in images}) == 3  # two steps' previews and the result differ
    done = events[-1]
    assert done.type == "image_generation.completed"
    assert done.quality == "high" and done.size == "256x256" and done.usage.input_tokens > 0


def test_stream_without_partial_images_and_with_n(client: OpenAI) -> None:
    events = list(client.images.generate(model="free-size-image", prompt="x", size="128x64", n=2, stream=True))
    assert [e.type for e in events] == ["image_generation.completed"] * 2
    assert [e.model_extra["image_index"] for e in events] == [0, 1]  # type: ignore[index]
    events = list(
        client.images.generate(
            model="free-size-image", prompt="x", size="128x64", n=2, stream=True, partial_images=1, output_format="jpeg"
        )
    )
    assert [(e.type, e.model_extra["image_index"]) for e in events] == [  # type: ignore[index]
        ("image_generation.partial_image", 0),
        ("image_generation.partial_image", 1),
        ("image_generation.completed", 0),
        ("image_generation.completed", 1),
    ]
    assert decode_b64(events[0].b64_json).format == "JPEG"


def test_edit_streams_image_edit_events(client: OpenAI) -> None:
    stream = client.images.edit(
        model="demo-image",
        image=("in.png", png_upload((256, 256)), "image/png"),
        prompt="snow",
        stream=True,
        partial_images=1,
    )
    events = list(stream)
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert decode_b64(events[-1].b64_json).size == (256, 256)


def test_json_edit_is_the_same_edit_as_multipart(client: OpenAI, images_base_url: str) -> None:
    src, mask = png_upload((256, 256)), alpha_mask((256, 256), (64, 64, 192, 160))
    multipart = client.images.edit(
        model="demo-image",
        image=("in.png", src, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a cat",
        extra_body={"seed": 11},
    )
    body = {
        "model": "demo-image",
        "prompt": "a cat",
        "images": [{"image_url": _uri(src)}],
        "mask": {"image_url": _uri(mask)},
        "seed": 11,
    }
    resp = httpx.post(f"{images_base_url}/images/edits", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    via_json = resp.json()
    assert via_json["size"] == "256x256"
    a, b = (np.asarray(decode_b64(x)) for x in (multipart.data[0].b64_json, via_json["data"][0]["b64_json"]))
    assert np.array_equal(a, b)
    # the SDK's generic post sends the same JSON
    again = client.post("/images/edits", body=body, cast_to=openai.types.ImagesResponse)
    assert np.array_equal(np.asarray(decode_b64(again.data[0].b64_json)), a)  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"images": []}, 400, "images", "at least 1"),
        ({"images": [{"file_id": "file-1"}]}, 400, "images.file_id", "Files API"),
        ({"images": [{}]}, 400, "images.image_url", "image_url"),
        ({"images": [{"image_url": "https://127.0.0.1/x.png"}]}, 422, "images.image_url", "private"),
        ({"images": [{"image_url": "data:image/png;base64,AAAA"}]}, 415, "images.image_url", ""),
        ({"images": [{"image_url": "x", "extra": 1}]}, 400, "images[0].extra", ""),
        ({"images": [{"image_url": "IMG"}], "mask": {"image_url": "SMALL"}}, 400, "mask", "same size"),
        ({"images": [{"image_url": "IMG"}, {"image_url": "IMG"}]}, 400, "image", "1 image per request"),
    ],
)
def test_json_edit_errors_name_the_part(images_base_url: str, body: dict, status: int, param: str, words: str) -> None:
    img, small = _uri(png_upload((128, 128))), _uri(alpha_mask((64, 64), (0, 0, 32, 32)))
    for item in [*body["images"], body.get("mask") or {}]:
        if item.get("image_url") in ("IMG", "SMALL"):
            item["image_url"] = img if item["image_url"] == "IMG" else small
    resp = httpx.post(
        f"{images_base_url}/images/edits", json={"model": "demo-image", "prompt": "p", **body}, timeout=60
    )
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["param"] == param and words in err["message"], err


def test_variations_through_the_sdk(client: OpenAI) -> None:
    src = ("in.png", png_upload((256, 256)), "image/png")
    resp = client.images.create_variation(model="demo-image", image=src, n=2, size="256x256", extra_body={"seed": 5})
    images = [decode_b64(d.b64_json) for d in resp.data]  # type: ignore[arg-type]
    assert [im.size for im in images] == [(256, 256)] * 2 and images[0].tobytes() != images[1].tobytes()
    # image i of n comes from seed + i: the first is seed 5's image alone, up to batch numerics
    again = decode_b64(
        client.images.create_variation(model="demo-image", image=src, size="256x256", extra_body={"seed": 5})
        .data[0]
        .b64_json
    )
    assert same_up_to_batch_numerics(again, images[0]) and not same_up_to_batch_numerics(again, images[1])
    # size auto follows the input; the url form works too
    linked = client.images.create_variation(model="demo-image", image=src, response_format="url")
    assert httpx.get(linked.data[0].url, timeout=30).status_code == 200  # type: ignore[arg-type]


def test_variation_errors(client: OpenAI, image_server: LiveServer) -> None:
    src = ("in.png", png_upload((256, 256)), "image/png")
    with pytest.raises(openai.BadRequestError) as e:
        client.images.create_variation(model="no-edit-image", image=src)
    assert e.value.body["param"] == "model" and "variations" in e.value.body["message"]  # type: ignore[index]
    resp = httpx.post(f"{image_server.url}/v1/images/variations", json={"model": "demo-image"}, timeout=30)
    assert resp.status_code == 415 and "multipart" in resp.json()["error"]["message"]
    resp = httpx.post(f"{image_server.url}/v1/images/variations", data={"model": "demo-image"}, timeout=30)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "image"
    mask = ("m.png", alpha_mask((256, 256), (0, 0, 8, 8)), "image/png")
    resp = httpx.post(
        f"{image_server.url}/v1/images/variations", files=[("image", src), ("mask", mask)], data={"model": "demo-image"}
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "mask"


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/edits"])
def test_the_published_schema_documents_the_stream(images_base_url: str, path: str) -> None:
    """With ``stream: true`` these answer server-sent events: /openapi.json says so beside the JSON answer."""
    doc = published(images_base_url)
    assert set(doc["paths"][path]["post"]["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}


def test_a_transparent_jpeg_is_invalid_in_the_schema_as_on_the_server(images_base_url: str, client: OpenAI) -> None:
    doc = published(images_base_url)
    valid = accepts(doc, "ImageGenerationRequest")
    body = {"model": "demo-image", "prompt": "a lighthouse", "size": "256x256", "background": "transparent"}
    assert (
        valid(body)
        and valid({**body, "output_format": "png"})
        and valid({**body, "background": "opaque", "output_format": "jpeg"})
    )
    assert not valid({**body, "output_format": "jpeg"})
    with pytest.raises(openai.BadRequestError) as e:  # what the schema refuses, the server refuses
        client.images.generate(**body, output_format="jpeg")  # type: ignore[arg-type]
    assert e.value.body["param"] == "background"  # type: ignore[index]
