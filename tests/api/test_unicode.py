"""Lone UTF-16 surrogates in JSON bodies are found, with the exact location, before any model sees them."""

from __future__ import annotations

import json

import pytest

from mmserve.api.unicode import lone_surrogate_at, refuse_lone_surrogates
from mmserve.errors import InvalidRequestError


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ('{"a": "fine \\ud83d\\ude00 pair"}', None),
        ('{"a": "x\\ud800"}', ["a"]),
        ('{"a": [1, {"b": "\\udfff"}]}', ["a", 1, "b"]),
        ('{"a": {"\\ud800": 1}}', ["a"]),
        ('"\\ud800"', []),
    ],
)
def test_found_with_its_location(body: str, loc: list | None) -> None:
    assert lone_surrogate_at(json.loads(body)) == loc


def test_deep_bodies_do_not_overflow_the_stack() -> None:
    body: object = "\ud800"
    for _ in range(100_000):
        body = [body]
    assert lone_surrogate_at(body) == [0] * 100_000


def test_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequestError) as e:
        refuse_lone_surrogates(json.loads('{"messages": [{"content": [{"text": "\\ud800"}]}]}'))
    assert e.value.param == "messages[0].content[0].text" and e.value.code == "invalid_unicode"
