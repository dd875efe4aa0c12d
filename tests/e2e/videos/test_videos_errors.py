"""Bad video requests get a clear 4xx naming the field at submit time, never a queued job that fails later."""

from __future__ import annotations

import json
import warnings
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers.images import data_uri, image_bytes

warnings.filterwarnings("ignore", message="The Sora API", category=DeprecationWarning)

OK = {"model": "tiny-video", "prompt": "a cat", "size": "64x48", "seconds": "1"}


def _count(video_url: str) -> int:
    return len(httpx.get(f"{video_url}/v1/videos", params={"limit": 100}).json()["data"])


def _error(r: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    assert err["message"] and "Traceback" not in err["message"]
    return err


@pytest.mark.parametrize(
    ("change", "status", "param", "needle"),
    [
        ({"model": "sora-2"}, 404, "model", "GET /v1/models"),
        ({"model": "tiny-chat"}, 400, "model", "chat model"),
        ({"size": "big"}, 400, "size", "1280x720"),
        ({"size": "128x128"}, 400, "size", "64x48, 96x64, 1280x720"),
        ({"seconds": "3"}, 400, "seconds", '"0.25", "0.5", "1", "2"'),
        ({"seconds": "soon"}, 400, "seconds", "positive number"),
        ({"seconds": -1}, 400, "seconds", "positive number"),
        ({"fps": 30}, 400, "fps", "8, 16 fps"),
        ({"fps": 0}, 400, "fps", "fps"),
        ({"prompt": ""}, 400, "prompt", "prompt"),
        ({"prompt": None}, 400, "prompt", "prompt"),
        ({"input_reference": {"file_id": "file_123"}}, 400, "input_reference.file_id", "upload the image"),
        ({"input_reference": {"image_url": "data:image/png;base64,AAAA"}}, 415, "input_reference.image_url", ""),
        ({"input_reference": {"image_url": "ftp://x/y.png"}}, 400, "input_reference.image_url", "http(s)"),
        ({"input_reference": {"image_url": data_uri(), "extra": 1}}, 400, "input_reference.extra", ""),
    ],
)
def test_json_requests_refused_at_submit(
    video_url: str, change: dict[str, Any], status: int, param: str, needle: str
) -> None:
    before = _count(video_url)
    body = {k: v for k, v in {**OK, **change}.items() if v is not None}
    err = _error(httpx.post(f"{video_url}/v1/videos", json=body), status, param)
    assert needle in err["message"]
    assert _count(video_url) == before  # nothing was queued


def test_text_only_model_refuses_a_reference_image(video_url: str) -> None:
    body = {**OK, "model": "text-only-video", "input_reference": {"image_url": data_uri()}}
    err = _error(httpx.post(f"{video_url}/v1/videos", json=body), 400, "input_reference")
    assert err["code"] == "model_capability" and "image_to_video" in err["message"]


def test_multipart_errors_name_the_field(client: OpenAI, video_url: str) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.videos.create(**OK, input_reference=("notes.txt", b"not an image at all", "text/plain"))  # type: ignore[arg-type]
    assert e.value.status_code == 415 and e.value.body["param"] == "input_reference"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        client.videos.create(**OK, input_reference=("cut.png", image_bytes()[:60], "image/png"))  # type: ignore[arg-type]
    assert bad.value.body["param"] == "input_reference"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as fps:
        client.videos.create(**OK, extra_body={"fps": "fast"})  # type: ignore[arg-type]
    assert fps.value.body["param"] == "fps"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as both:
        client.videos.create(
            **OK,  # type: ignore[arg-type]
            input_reference=("a.png", image_bytes(), "image/png"),
            extra_body={"input_reference": {"image_url": data_uri()}},
        )
    assert both.value.body["param"] == "input_reference"  # type: ignore[index]


def test_malformed_bodies(video_url: str) -> None:
    r = httpx.post(f"{video_url}/v1/videos", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    for deep in (b"[" * 100_000, b'{"a":' * 100_000, b"\xff\xfe{}"):  # too deep for the parser (a 500), bad UTF-8
        r = httpx.post(f"{video_url}/v1/videos", content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
    _error(httpx.post(f"{video_url}/v1/videos", content=json.dumps([1, 2])), 400, "prompt")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"x"),  # no boundary
        ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"),
    ],
)
def test_malformed_multipart_is_a_clear_400(video_url: str, content_type: str, body: bytes) -> None:
    r = httpx.post(f"{video_url}/v1/videos", content=body, headers={"content-type": content_type})
    err = _error(r, 400, None)
    assert err["code"] == "invalid_multipart" and "multipart/form-data" in err["message"]  # not Starlette's words


def test_a_form_over_its_limits_says_which(video_url: str) -> None:
    big = httpx.post(f"{video_url}/v1/videos", files={"prompt": (None, "x" * 100_000)})
    assert big.status_code == 413 and big.json()["error"]["code"] == "field_too_large", big.text
    assert "64 KiB" in big.json()["error"]["message"]
    many = httpx.post(f"{video_url}/v1/videos", files=[("prompt", (None, "x"))] * 70)
    err = _error(many, 400, None)
    assert err["code"] == "too_many_fields" and "at most 64" in err["message"]


def test_input_reference_is_given_once(video_url: str) -> None:
    before = _count(video_url)
    png = ("a.png", image_bytes(), "image/png")
    two_files = httpx.post(f"{video_url}/v1/videos", data=OK, files=[("input_reference", png)] * 2)
    assert "at most one" in _error(two_files, 400, "input_reference")["message"]
    # a field and a bracketed field, in either order
    url, bracket = {"input_reference": data_uri()}, {"input_reference[image_url]": data_uri()}
    for fields in ({**url, **bracket}, {**bracket, **url}):
        _error(httpx.post(f"{video_url}/v1/videos", data={**OK, **fields}), 400, "input_reference")
    assert _count(video_url) == before


def test_a_full_queue_is_a_503_with_retry_after(video_url: str) -> None:
    body = {**OK, "model": "text-only-video"}  # its card allows no waiting jobs (max_queue: 0)
    r = httpx.post(f"{video_url}/v1/videos", json=body)
    assert r.status_code == 503 and r.headers["retry-after"] and r.json()["error"]["code"] == "overloaded"


def test_list_retrieve_and_content_errors(video_url: str, client: OpenAI) -> None:
    _error(httpx.get(f"{video_url}/v1/videos", params={"limit": 0}), 400, "limit")
    _error(httpx.get(f"{video_url}/v1/videos", params={"order": "sideways"}), 400, "order")
    _error(httpx.get(f"{video_url}/v1/videos", params={"after": "video_nope"}), 400, "after")
    err = _error(httpx.get(f"{video_url}/v1/videos/video_nope"), 404, "video_id")
    assert err["code"] == "video_not_found"
    _error(httpx.delete(f"{video_url}/v1/videos/video_nope"), 404, "video_id")
    video = client.videos.create(model="tiny-video", prompt="slow", seconds="2", size="96x64")
    r = httpx.get(f"{video_url}/v1/videos/{video.id}/content")
    if r.status_code == 400:  # still queued or running
        assert r.json()["error"]["code"] == "video_not_ready"
    _error(httpx.get(f"{video_url}/v1/videos/{video.id}/content", params={"variant": "gif"}), 400, "variant")
    client.videos.delete(video.id)
