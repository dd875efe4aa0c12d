"""Bad embedding requests: a 4xx OpenAI envelope naming the field, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.images import data_uri

IMAGE = {"type": "image_url", "image_url": {"url": data_uri()}}


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"model": "text-embed", "input": ["ok", IMAGE]}, 400, "input[1].image_url", "embeds text only"),
        ({"model": "text-embed", "input": "x", "dimensions": 65}, 400, "dimensions", "at most 64"),
        ({"model": "text-embed-cls", "input": "x", "dimensions": 8}, 400, "dimensions", "matryoshka"),
        ({"model": "demo-embed", "input": "x", "dimensions": 0}, 400, "dimensions", "greater than or equal to 1"),
        ({"model": "text-embed", "input": ["ok", ""]}, 400, "input[1]", "empty string"),
        ({"model": "text-embed", "input": ""}, 400, "input", "empty string"),
        ({"model": "text-embed", "input": []}, 400, "input", "at least one"),
        ({"model": "text-embed", "input": [[1, 2], []]}, 400, "input[1]", "must not be empty"),
        ({"model": "text-embed-cls", "input": ["ok", "word " * 40]}, 400, "input[1]", "at most 24 tokens"),
        ({"model": "text-embed", "input": [[1, 10**6]]}, 400, "input[0]", "token id 1000000"),
        ({"model": "text-embed", "input": [[-1]]}, 400, "input[0]", "token id -1"),
        ({"model": "text-embed", "input": [{"type": "audio", "audio": "x"}]}, 400, "input[0]", "input item"),
        ({"model": "text-embed", "input": [1.5]}, 400, "input", "token id"),
        ({"model": "text-embed", "input": ["ok", [1, "a"]]}, 400, "input[1]", "token ids"),
        ({"model": "text-embed", "input": ["ok", 3]}, 400, "input[1]", "must be a string"),
        ({"model": "text-embed", "input": {"text": "x"}}, 400, "input", "a list of items"),
        ({"model": "text-embed", "input": [{"type": "text"}]}, 400, "input[0].text", "required"),
        ({"model": "text-embed", "input": "x", "encoding_format": "int8"}, 400, "encoding_format", "float"),
        ({"model": "text-embed", "input": ["x"] * 65}, 400, "input", "at most 64"),
        ({"model": "tiny-text", "input": "x"}, 400, "model", "chat model"),
        ({"model": "no-such-model", "input": "x"}, 404, "model", None),
        ({"input": "x"}, 400, "model", "required"),
        ({"model": "demo-embed", "input": [{"image": "data:image/png;base64,!!!"}]}, 400, "input[0].image", None),
        ({"model": "demo-embed", "input": [{"image": "ftp://x/y.png"}]}, 400, "input[0].image", "http(s)"),
        (
            {"model": "demo-embed", "input": [{"type": "image_url", "image_url": {"url": "http://10.0.0.1/a.png"}}]},
            422,
            "input[0].image_url",
            None,
        ),
        ({"model": "demo-embed", "input": [{"image": data_uri()}] * 17}, 400, "input", "at most 16"),
    ],
)
def test_bad_input_names_the_field(embed_url: str, body: dict, status: int, param: str, words: str | None) -> None:
    r = httpx.post(f"{embed_url}/embeddings", json=body, timeout=60)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["param"] == param, err
    if words:
        assert words in err["message"], err["message"]


def test_invalid_unicode_is_named(embed_url: str) -> None:
    body = b'{"model": "text-embed", "input": ["ok", "\\ud800"]}'
    r = httpx.post(f"{embed_url}/embeddings", content=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[1]", r.text
