"""Bounds of the multipart edit form, in-process (no model is loaded for these refusals)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mmserve.api.app import create_app
from mmserve.cards import ModelCard
from mmserve.catalog.catalog import Catalog
from mmserve.settings import LimitSettings, Settings
from tests.helpers.image_checks import png_upload

CARD = ModelCard.model_validate(
    {
        "id": "img",
        "task": "image-generation",
        "engine": "diffusers-image",
        "source": "demo:image",
        "capabilities": {"edits": True},
    }
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    limits = LimitSettings(max_data_uri_bytes=4000, max_request_bytes=2_000_000, max_images_per_request=3)
    settings = Settings(data_dir=tmp_path_factory.mktemp("mp"), limits=limits, load_on_start=False)
    return TestClient(create_app(settings, Catalog([CARD], base_dir=Path("."))))


def _err(resp: object, status: int) -> dict:
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    err: dict = resp.json()["error"]  # type: ignore[attr-defined]
    return err


def test_file_over_the_per_image_limit_is_413(client: TestClient) -> None:
    big = png_upload((200, 200)) + b"\0" * 5000
    err = _err(client.post("/v1/images/edits", data={"prompt": "x"}, files={"image": ("a.png", big)}), 413)
    assert err["param"] == "image" and "4000" in err["message"]
    err = _err(client.post("/v1/images/edits", data={"prompt": "x"}, files={"mask": ("m.png", big)}), 413)
    assert err["param"] == "mask"


def test_text_field_cap_and_file_count(client: TestClient) -> None:
    err = _err(client.post("/v1/images/edits", files={"prompt": (None, "x" * 300_000)}), 413)
    assert err["code"] == "field_too_large"
    files = [("image[]", ("a.png", b"x"))] * 5
    err = _err(client.post("/v1/images/edits", data={"prompt": "x"}, files=files), 400)
    assert err["code"] == "too_many_files" and "at most 3 images" in err["message"]


def test_malformed_and_oversized_bodies(client: TestClient) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    nameless = b"--xyz\r\nContent-Type: text/plain\r\n\r\nhello\r\n--xyz--\r\n"  # a part without a name
    err = _err(client.post("/v1/images/edits", content=nameless, headers=headers), 400)
    assert err["code"] == "invalid_multipart" and "malformed" in err["message"]
    err = _err(client.post("/v1/images/edits", content=b"x", headers={"Content-Type": "multipart/form-data"}), 400)
    assert err["code"] == "invalid_multipart"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the cap is met while the form streams in
        yield b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        for _ in range(30):
            yield b"\0" * 100_000
        yield b"\r\n--xyz--\r\n"

    err = _err(client.post("/v1/images/edits", content=chunked(), headers=headers), 413)
    assert err["code"] == "request_too_large"


def test_two_masks(client: TestClient) -> None:
    files = [("image", ("a.png", png_upload((8, 8)))), ("mask", ("m.png", b"1")), ("mask", ("m.png", b"2"))]
    err = _err(client.post("/v1/images/edits", data={"prompt": "x", "model": "img"}, files=files), 400)
    assert err["param"] == "mask"
