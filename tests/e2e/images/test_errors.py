"""Bad image requests: each a clear 4xx in the OpenAI envelope naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers.image_checks import alpha_mask, png_upload
from tests.helpers.server import LiveServer


@pytest.fixture
def client(images_base_url: str) -> OpenAI:
    return OpenAI(base_url=images_base_url, api_key="unused", max_retries=0)


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "Traceback" not in err["message"]
    return err


def test_unsupported_size_lists_what_the_model_makes(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="demo-image", prompt="x", size="1792x1024")
    body: Any = e.value.body
    assert body["param"] == "size" and body["code"] == "unsupported_size"
    assert "1792x1024" in body["message"] and "512x512, 256x256" in body["message"]


def test_size_beyond_the_pixel_cap_of_a_free_size_card(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="free-size-image", prompt="x", size="1024x1024")
    body: Any = e.value.body
    assert body["param"] == "size" and "262144 pixels" in body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="free-size-image", prompt="x", size="300x300")  # not a multiple of 8
    body = e.value.body
    assert body["param"] == "size" and "multiples of 8" in body["message"] and "304x304" in body["message"]


@pytest.mark.parametrize(
    ("overrides", "param", "words"),
    [
        ({"size": "big"}, "size", "WIDTHxHEIGHT"),
        ({"n": 11}, "n", "10"),
        ({"n": 0}, "n", "1"),
        ({"n": 5}, "n", "at most 4"),
        ({"prompt": ""}, "prompt", "empty"),
        ({"prompt": "   "}, "prompt", "empty"),
        ({"output_format": "gif"}, "output_format", "png"),
        ({"response_format": "file"}, "response_format", "b64_json"),
        ({"quality": "ultra"}, "quality", "low"),
        ({"output_compression": 101}, "output_compression", "100"),
        ({"background": "transparent", "output_format": "jpeg"}, "background", "alpha channel"),
        ({"background": "transparent"}, "background", "cannot make transparent"),
        ({"stream": True, "partial_images": 4}, "partial_images", "less than or equal to 3"),
        ({"steps": 500}, "steps", "at most 150"),
        ({"seed": -1}, "seed", "0"),
        ({"guidance_scale": -2}, "guidance_scale", "0"),
    ],
)
def test_bad_generation_fields(image_server: LiveServer, overrides: dict[str, Any], param: str, words: str) -> None:
    body = {"model": "demo-image", "prompt": "A cat", "size": "256x256", **overrides}
    err = _error(httpx.post(f"{image_server.url}/v1/images/generations", json=body, timeout=60), 400)
    assert err["param"] == param and words in err["message"], err


def test_missing_prompt_and_unknown_model(client: OpenAI, image_server: LiveServer) -> None:
    err = _error(httpx.post(f"{image_server.url}/v1/images/generations", json={"model": "demo-image"}), 400)
    assert err["param"] == "prompt" and "required" in err["message"]
    with pytest.raises(openai.NotFoundError) as e:
        client.images.generate(model="dall-e-9", prompt="x")
    assert "dall-e-9" in str(e.value)
    json_header = {"Content-Type": "application/json"}
    resp = httpx.post(f"{image_server.url}/v1/images/generations", content=b"{not json", headers=json_header)
    err = _error(resp, 400)
    assert err["code"] == "invalid_json"


def _edit(server: LiveServer, files: list[Any], data: dict[str, str] | None = None) -> httpx.Response:
    fields = {"model": "demo-image", "prompt": "x", **(data or {})}
    return httpx.post(f"{server.url}/v1/images/edits", data=fields, files=files, timeout=60)


def test_bad_edits(image_server: LiveServer) -> None:
    png = ("in.png", png_upload((256, 256)), "image/png")
    # no image
    err = _error(httpx.post(f"{image_server.url}/v1/images/edits", data={"model": "demo-image", "prompt": "x"}), 400)
    assert err["param"] == "image"
    # JSON without images
    err = _error(httpx.post(f"{image_server.url}/v1/images/edits", json={"prompt": "x"}), 400)
    assert err["param"] == "images"
    # neither multipart nor JSON
    err = _error(
        httpx.post(f"{image_server.url}/v1/images/edits", content=b"x", headers={"content-type": "text/plain"}), 415
    )
    assert "multipart/form-data" in err["message"] and "JSON" in err["message"]
    # not an image
    err = _error(_edit(image_server, [("image", ("in.png", b"hello, not an image", "image/png"))]), 415)
    assert err["param"] == "image"
    # a GIF where the card takes png/jpeg/webp
    import io

    from PIL import Image

    gif = io.BytesIO()
    Image.new("RGB", (64, 64)).save(gif, "GIF")
    err = _error(_edit(image_server, [("image", ("in.gif", gif.getvalue(), "image/gif"))]), 415)
    assert "gif" in err["message"].lower()
    # two images for a model that edits one
    err = _error(_edit(image_server, [("image[]", png), ("image[]", png)]), 400)
    assert err["param"] == "image" and "1 image per request" in err["message"]
    # a mask of another size
    mask = ("m.png", alpha_mask((128, 128), (0, 0, 64, 64)), "image/png")
    err = _error(_edit(image_server, [("image", png), ("mask", mask)]), 400)
    assert err["param"] == "mask" and "same size" in err["message"]
    # the image as a text field
    err = _error(_edit(image_server, [], {"image": "data:image/png;base64,AAAA"}), 400)
    assert err["param"] == "image" and "file" in err["message"]
    # a model without edits
    err = _error(_edit(image_server, [("image", png)], {"model": "no-edit-image"}), 400)
    assert err["param"] == "model" and "capabilities.edits" in err["message"]
    # bad fields are named as in generations
    err = _error(_edit(image_server, [("image", png)], {"n": "zero"}), 400)
    assert err["param"] == "n"
    err = _error(_edit(image_server, [("image", png)], {"strength": "1.5"}), 400)
    assert err["param"] == "strength"
    # too many files
    err = _error(_edit(image_server, [("image[]", png)] * 40), 400)
    assert err["param"] == "image" and err["code"] == "too_many_files"


def test_server_stays_healthy(image_server: LiveServer) -> None:
    assert image_server.health()["models"]["demo-image"] == "loaded"
