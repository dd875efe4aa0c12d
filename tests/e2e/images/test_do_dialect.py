"""The DO-style request of seeds/000 (curl and Python SDK), with only the host and model changed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from openai import OpenAI

from tests.helpers.image_checks import decode_b64
from tests.helpers.server import LiveServer

# ../shared beside the checkout (CI), or beside the folder of worktrees
_ROOT = Path(__file__).resolve().parents[3]
SEED = next((p for d in (_ROOT.parent, _ROOT.parent.parent) for p in (d / "shared" / "seeds").glob("000_*.txt")), None)

# Copied verbatim from the seed (checked against it below when ../shared is present).
CURL = """curl https://api.gradient.ai/v1/images/generations \\
-H "Authorization: Bearer $MODEL_ACCESS_KEY" \\
-H "Content-Type: application/json" \\
-d '{
"model": "stable-diffusion-3.5-large",
"prompt": "A sunset over mountains",
"n": 1,
"size": "1024x1024",
"quality": "auto",
"response_format": "b64_json",
"background": "auto",
"output_format": "png"
}'"""


def test_snippet_matches_the_seed() -> None:
    if SEED is None:
        pytest.skip("../shared/seeds is not beside this checkout")
    assert CURL in SEED.read_text()


def test_do_curl_request(image_server: LiveServer) -> None:
    cmd = CURL.replace("https://api.gradient.ai", image_server.url).replace("stable-diffusion-3.5-large", "demo-image")
    out = subprocess.run(
        ["bash", "-c", cmd + " -s --fail-with-body"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"PATH": "/usr/bin:/bin", "MODEL_ACCESS_KEY": "unused"},
    ).stdout
    body = json.loads(out)
    assert isinstance(body["created"], int)
    assert len(body["data"]) == 1
    img = decode_b64(body["data"][0]["b64_json"])
    assert img.format == "PNG" and img.size == (1024, 1024)
    assert body["usage"]["total_tokens"] >= 1


def test_do_python_example(images_base_url: str) -> None:
    client = OpenAI(base_url=images_base_url, api_key="unused", max_retries=0)
    response = client.images.generate(
        model="demo-image",
        prompt="A sunset over mountains",
        n=1,
        size="1024x1024",
        quality="auto",
        response_format="b64_json",
    )
    assert decode_b64(response.data[0].b64_json).size == (1024, 1024)
    assert re.fullmatch(r"\d+x\d+", response.size or "")
