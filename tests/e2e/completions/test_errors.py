"""Bad legacy completion requests: a 4xx envelope naming the field."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.openapi import published


def _body(**fields: object) -> dict:
    return {"model": "tiny-text", "prompt": "x", **fields}


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (_body(logprobs=2, echo=True), "logprobs", "one or the other"),
        (_body(logprobs=6), "logprobs", None),
        (_body(suffix="end"), "suffix", "not supported"),
        (_body(logit_bias={"5": 10}), "logit_bias", "not supported"),
        (_body(best_of=3), "best_of", "must equal n"),
        (_body(max_tokens=65), "max_tokens", "at most 64"),
        (_body(max_tokens=0), "max_tokens", None),
        (_body(n=9), "n", "at most"),
        (_body(prompt=[]), "prompt", "at least one"),
        (_body(prompt=["ok", ""]), "prompt[1]", "empty"),
        (_body(prompt=[[1, 2], [10**6]]), "prompt[1]", "token id 1000000"),
        (_body(prompt=[1.5]), "prompt[0]", None),
        (_body(stop=["a", "b", "c", "d", "e"]), "stop", "At most 4"),
        (_body(stop=[""]), "stop[0]", "at least 1 character"),
        (_body(prompt="word " * 3000, max_tokens=4), "prompt", "Shorten the prompt"),
        (_body(prompt=["ok", "word " * 3000], max_tokens=4), "prompt[1]", "context"),
        ({"model": "tiny-text"}, "prompt", "required"),
        ({"prompt": "x"}, "model", "required"),
        (_body(model="demo-vlm", prompt="Look: <image>"), "prompt", "reserves"),
        (_body(model="no-such-model"), "model", None),
    ],
)
def test_bad_input_names_the_field(base_url: str, body: dict, param: str, words: str | None) -> None:
    r = httpx.post(f"{base_url}/completions", json=body, timeout=60)
    assert 400 <= r.status_code < 500, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["param"] == param, err
    if words:
        assert words in err["message"], err["message"]


@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
def test_the_published_schema_refuses_empty_stop_strings_as_the_server_does(base_url: str, path: str) -> None:
    """A client (or a fuzzer) reading /openapi.json must not find valid what is refused: an empty stop string."""
    doc = published(base_url)
    ref = doc["paths"][f"/v1{path}"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    stop = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]["stop"]["anyOf"]
    strings = [s for s in stop if s.get("type") == "string"] + [s["items"] for s in stop if s.get("type") == "array"]
    assert len(strings) == 2 and all(s.get("minLength") == 1 for s in strings), stop
