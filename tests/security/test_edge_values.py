"""Values at the edges that once reached the engine and failed there (500s); now 200 or 400."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.images import data_uri
from tests.security.conftest import SecurityServer, error_of

IMAGE = {"type": "image_url", "image_url": {"url": data_uri()}}


def _post(sec: SecurityServer, **body: object) -> httpx.Response:
    payload = {"model": "demo-vlm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **body}
    return httpx.post(f"{sec.url}/v1/chat/completions", json=payload, timeout=60)


# int64 less its top 1023 values: 2**63 - 1 read as a double (as JSON numbers often are) is 2**63
@pytest.mark.parametrize("seed", [2**63 - 1024, -(2**63), 0, -1])
def test_int64_seeds_work(security_server: SecurityServer, seed: int) -> None:
    assert _post(security_server, seed=seed, n=2).status_code == 200


@pytest.mark.parametrize("seed", [2**63 - 1, 2**63, -(2**63) - 1, 2**70])
def test_seeds_beyond_int64_are_400(security_server: SecurityServer, seed: int) -> None:
    assert error_of(_post(security_server, seed=seed), 400)["param"] == "seed"


@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-6])
def test_tiny_temperatures_are_greedy(security_server: SecurityServer, temperature: float) -> None:
    a = _post(security_server, temperature=temperature, max_tokens=4)
    b = _post(security_server, temperature=0, max_tokens=4)
    assert a.status_code == 200, a.text
    assert a.json()["choices"][0]["message"] == b.json()["choices"][0]["message"]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "user", "content": "<image>"}], "messages[0].content"),
        (
            [
                {"role": "system", "content": "x"},
                {"role": "user", "content": [IMAGE, {"type": "text", "text": "a<image>"}]},
            ],
            "messages[1].content[1].text",
        ),
    ],
)
def test_typed_image_placeholders_are_plain_text(security_server: SecurityServer, messages: list, param: str) -> None:
    # user text is escaped (issue 18, item 11): the placeholder claims no image slot, so nothing fails
    r = _post(security_server, messages=messages)
    assert r.status_code == 200, r.text
    images = sum(1 for m in messages if isinstance(m["content"], list) for p in m["content"] if p is IMAGE)
    without = _post(security_server, messages=[{"role": "user", "content": [IMAGE] * images or "a"}])
    assert r.json()["usage"]["prompt_tokens"] - without.json()["usage"]["prompt_tokens"] < 16  # no image expansion


@pytest.mark.parametrize(("field", "value"), [("stream", 0), ("logprobs", "true"), ("stream", 1.0)])
def test_booleans_are_true_or_false(security_server: SecurityServer, field: str, value: object) -> None:
    """JSON's 0 or "true" is no boolean (the schema's ``boolean``); once read as one by pydantic's lax mode."""
    error = error_of(_post(security_server, **{field: value}), 400)
    assert error["param"] == field
    assert "true or false" in error["message"]
