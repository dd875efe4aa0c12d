"""Errors that teach, through real clients: wrapped base64 in seed 004's curl, unknown routes, unknown
content parts, and the provider base URLs of the seeds (``/v1/openai``, ``/v1/inference``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers.images import image_bytes

# Seed 004, "Query Models with a Local Image", cURL tab: as written but for the host, the model and the
# image path. Its comment's `base64 -i` wraps at 76 columns with GNU coreutils (Linux).
SEED_004_LOCAL_IMAGE = r"""
BASE64_IMAGE=$(base64 -i "IMAGE_PATH")
curl -X POST "BASE_URL/v1/inference/chat/completions" \
-H "Content-Type: application/json" \
-H "Authorization: Bearer $GRAVIXLAYER_API_KEY" \
-d "{
\"model\": \"demo-vlm\",
\"messages\": [
{
\"role\": \"user\",
\"content\": [
{
\"type\": \"text\",
\"text\": \"what is in the image\"
},
{
\"type\": \"image_url\",
\"image_url\": {
\"url\": \"data:image/jpeg;base64,$BASE64_IMAGE\"
}
}
]
}
],
\"stream\": false
}" \
--max-time 60 \
--retry 2
"""


def _error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def _run_seed(base_url: str, image: Path, *, wrap: bool) -> dict:
    script = SEED_004_LOCAL_IMAGE.replace("BASE_URL", base_url.removesuffix("/v1"))
    script = script.replace("IMAGE_PATH", str(image))
    if not wrap:  # what the error message tells the user to do
        script = script.replace("base64 -i", "base64 -w0")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=90, check=True).stdout
    return json.loads(out)


def test_seed_004_curl_with_wrapped_base64_gets_position_and_fix(base_url: str, tmp_path: Path) -> None:
    image = tmp_path / "image.jpg"
    image.write_bytes(image_bytes((64, 64), fmt="JPEG"))
    body = _run_seed(base_url, image, wrap=True)
    err = body["error"]
    assert err["code"] == "invalid_json" and err["type"] == "invalid_request_error"
    # the first wrap: after '"url": "data:image/jpeg;base64,' (31 characters) and 76 columns of base64
    assert ", column 108 " in err["message"]
    assert "base64 -w0" in err["message"]
    fixed = _run_seed(base_url, image, wrap=False)  # the fix the message names works
    assert fixed["object"] == "chat.completion" and fixed["usage"]["prompt_tokens"] > 16


def test_invalid_json_names_line_and_column(base_url: str) -> None:
    resp = httpx.post(
        f"{base_url}/chat/completions",
        content=b'{"model": "demo-vlm",\n "messages": [}',
        headers={"content-type": "application/json"},
        timeout=10,
    )
    err = _error(resp, 400)
    assert err["code"] == "invalid_json" and "line 2, column 15" in err["message"]


def test_videos_json_errors_name_the_position_too(base_url: str) -> None:
    resp = httpx.post(
        f"{base_url}/videos", content=b'{"prompt": "a\tb"}', headers={"content-type": "application/json"}, timeout=10
    )
    err = _error(resp, 400)
    assert "line 1, column 14" in err["message"] and "base64 -w0" in err["message"]


def test_unknown_route_lists_the_surfaces_and_the_closest(base_url: str) -> None:
    err = _error(httpx.post(f"{base_url}/chat/completion", json={}, timeout=10), 404)
    assert err["code"] == "unknown_route"
    assert "Did you mean /v1/chat/completions?" in err["message"]
    for surface in ("POST /v1/chat/completions", "POST /v1/images/generations", "POST /v1/audio/speech", "/v1/videos"):
        assert surface in err["message"]
    err = _error(httpx.get(f"{base_url}/nothing-like-it", timeout=10), 404)
    assert "Did you mean" not in err["message"] and "GET /v1/models" in err["message"]


def test_unsupported_content_part_names_it_and_the_supported_ones(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="demo-vlm",
            messages=[{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}],  # type: ignore[list-item]
        )
    err = e.value.body
    assert isinstance(err, dict) and err["param"] == "messages[0].content[0]"
    assert "'input_image'" in err["message"] and "text, image_url" in err["message"]
    assert "discriminator" not in err["message"] and "tag" not in err["message"]


@pytest.mark.parametrize("prefix", ["/v1/openai", "/v1/inference"])
def test_provider_base_urls_reach_the_same_api(base_url: str, prefix: str) -> None:
    client = OpenAI(base_url=base_url.removesuffix("/v1") + prefix, api_key="unused", max_retries=0)
    r = client.chat.completions.create(model="demo-vlm", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert r.model == "demo-vlm"
    assert [m.id for m in client.models.list()]
