"""POST /v1/images/edits (multipart) with the official openai SDK: image-to-image and inpainting."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from openai import OpenAI

from tests.helpers.image_checks import alpha_mask, decode_b64, png_upload
from tests.helpers.server import LiveServer


@pytest.fixture
def client(images_base_url: str) -> OpenAI:
    return OpenAI(base_url=images_base_url, api_key="unused", max_retries=0)


def test_edit_without_mask(client: OpenAI) -> None:
    src = png_upload((256, 256))
    resp = client.images.edit(model="demo-image", image=("in.png", src, "image/png"), prompt="make it blue")
    out = decode_b64(resp.data[0].b64_json)
    assert out.format == "PNG" and out.size == (256, 256)  # auto: the input's size
    assert resp.size == "256x256" and resp.usage is not None and resp.usage.input_tokens > 0


def test_edit_with_mask_changes_only_the_masked_area(client: OpenAI) -> None:
    src = png_upload((256, 256))
    hole = (64, 64, 192, 160)
    resp = client.images.edit(
        model="demo-image",
        image=("in.png", src, "image/png"),
        mask=("mask.png", alpha_mask((256, 256), hole), "image/png"),
        prompt="a cat in the middle",
        n=2,
    )
    before = np.asarray(decode_b64(png_upload_b64(src)))
    for item in resp.data:
        after = np.asarray(decode_b64(item.b64_json))
        inside = np.zeros(after.shape[:2], bool)
        inside[hole[1] : hole[3], hole[0] : hole[2]] = True
        assert np.array_equal(after[~inside], before[~inside])  # kept exactly outside the mask
        assert np.abs(after[inside].astype(int) - before[inside].astype(int)).mean() > 5  # repainted inside


def png_upload_b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_edit_with_image_list_size_and_format(client: OpenAI) -> None:
    resp = client.images.edit(
        model="demo-image",
        image=[("in.png", png_upload((300, 200)), "image/png")],  # sent as image[]
        prompt="autumn colours",
        size="512x512",
        output_format="webp",
        response_format="url",
        extra_body={"seed": 9, "strength": 0.5},
    )
    url = resp.data[0].url
    assert url and "/v1/artifacts/" in url
    got = httpx.get(url, timeout=30)
    assert got.status_code == 200 and got.headers["content-type"] == "image/webp"


def test_edit_auto_size_follows_the_input_on_a_free_size_card(client: OpenAI) -> None:
    resp = client.images.edit(
        model="free-size-image", image=("in.jpg", png_upload((640, 320)), "image/png"), prompt="x"
    )
    # 640x320 is 204800 pixels, within the card's 512x512: kept (as multiples of 64)
    assert decode_b64(resp.data[0].b64_json).size == (640, 320)


def test_seeded_edits_are_reproducible(client: OpenAI) -> None:
    def edit() -> bytes:
        r = client.images.edit(
            model="demo-image",
            image=("in.png", png_upload((256, 256)), "image/png"),
            prompt="snow",
            extra_body={"seed": 1234},
        )
        return decode_b64(r.data[0].b64_json).tobytes()

    assert edit() == edit()


def test_grayscale_mask_white_means_repaint(image_server: LiveServer) -> None:
    import io

    from PIL import Image

    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (0, 0, 128, 256))  # repaint the left half
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    files = [
        ("image", ("in.png", png_upload((256, 256)), "image/png")),
        ("mask", ("m.png", buf.getvalue(), "image/png")),
    ]
    r = httpx.post(
        f"{image_server.url}/v1/images/edits",
        data={"model": "demo-image", "prompt": "x", "seed": "1"},
        files=files,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    after = np.asarray(decode_b64(r.json()["data"][0]["b64_json"]))
    before = np.asarray(decode_b64(png_upload_b64(png_upload((256, 256)))))
    assert np.array_equal(after[:, 128:], before[:, 128:])
    assert not np.array_equal(after[:, :128], before[:, :128])


def test_transparent_pixels_of_the_image_are_the_mask_when_none_is_sent(client: OpenAI) -> None:
    import io

    from PIL import Image

    src = Image.open(io.BytesIO(png_upload((256, 256)))).convert("RGBA")
    src.paste((0, 0, 0, 0), (0, 0, 256, 64))  # the top strip is transparent: edit it
    buf = io.BytesIO()
    src.save(buf, "PNG")
    resp = client.images.edit(model="demo-image", image=("in.png", buf.getvalue(), "image/png"), prompt="sky")
    after = np.asarray(decode_b64(resp.data[0].b64_json))
    before = np.asarray(src.convert("RGB"))
    assert np.array_equal(after[64:], before[64:])  # opaque pixels kept exactly
    assert not np.array_equal(after[:64], before[:64])
