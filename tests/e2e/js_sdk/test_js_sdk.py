"""The official openai JavaScript SDK (npm ``openai``, pinned in package.json) against ``mmserve serve``.

Issue 15's surfaces as a Node.js user reaches them: chat with an image, a streamed chat with
usage, embeddings (the SDK asks base64 and decodes it), the Responses API (create, retrieve),
legacy completions, streamed image generation with partial images, speech then
transcription, and an error in the envelope the SDK parses. The SDK is installed with
``npm ci`` into this folder's node_modules (gitignored) the first time (tests/helpers/js_sdk.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers.js_sdk import js_sdk

HERE = Path(__file__).parent


@pytest.mark.slow
def test_the_javascript_sdk_reaches_every_surface(cli_server: str) -> None:
    js_sdk()
    run = subprocess.run(
        ["node", str(HERE / "check.mjs"), cli_server], capture_output=True, text=True, timeout=300, cwd=HERE
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])

    assert out["chat"]["content"] == "string" and out["chat"]["finish"] in ("stop", "length")
    assert out["chat"]["image_tokens"] > 0 and out["chat"]["prompt_tokens"] > out["chat"]["image_tokens"]
    assert out["stream"] == {"same_text": True, "completion_tokens": out["stream"]["completion_tokens"]}
    assert 0 < out["stream"]["completion_tokens"] <= 8
    emb = out["embeddings"]
    assert (emb["count"], emb["dims"], emb["short"]) == (2, 32, 8)
    assert abs(emb["norm"] - 1.0) < 1e-4  # base64 float32 vectors decoded by the SDK, L2-normalised
    assert out["responses"]["status"] in ("completed", "incomplete") and out["responses"]["text"] == "string"
    assert out["responses"]["retrieved"] is True
    assert out["completions"]["echoed"] is True and 0 < out["completions"]["tokens"] <= 5
    assert [e["type"] for e in out["images"]] == ["image_generation.partial_image", "image_generation.completed"]
    assert all(e["png"] == "PNG" for e in out["images"])
    audio = out["audio"]
    assert audio["riff"] == "RIFF" and audio["bytes"] > 1000
    assert audio["text"] == "string" and audio["duration"] > 0.5
    err = out["error"]
    assert err["status"] == 404 and err["param"] == "model" and "no-such-model" in err["message"]
