"""JSON syntax errors name their position; a control character inside a string points at wrapped base64."""

from __future__ import annotations

import pytest

from mmserve.api.jsonerrors import invalid_json, loads, position
from mmserve.errors import InvalidRequestError


def test_position_is_one_based_line_and_column() -> None:
    text = '{"a": 1,\n  "b": }'
    assert position(text, 0) == (1, 1)
    assert position(text, text.index("}")) == (2, 8)


def test_wrapped_base64_gets_the_hint() -> None:
    body = b'{"url": "data:image/png;base64,AAAA\nBBBB"}'
    with pytest.raises(InvalidRequestError) as e:
        loads(body)
    err = e.value
    assert err.code == "invalid_json" and err.status_code == 400
    assert "line 1, column 36" in err.message
    assert "base64 -w0" in err.message and "76 columns" in err.message


def test_other_syntax_errors_say_what_was_expected_and_where() -> None:
    with pytest.raises(InvalidRequestError) as e:
        loads(b'{"a": 1,\n "b": }')
    assert "Expecting value at line 2, column 7" in e.value.message
    assert "base64" not in e.value.message


def test_not_utf8_and_too_deep() -> None:
    with pytest.raises(InvalidRequestError, match="not UTF-8"):
        loads(b'{"a": "\xff"}')
    with pytest.raises(InvalidRequestError, match="nested"):
        loads(b"[" * 100_000 + b"]" * 100_000)


def test_reason_without_position() -> None:
    assert invalid_json("", None, None).message.startswith("The request body is not valid JSON.")
