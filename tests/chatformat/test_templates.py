"""Tool calls handed to chat templates: arguments decoded, as templates that `tojson` them expect."""

from __future__ import annotations

from mmserve.chatformat.templates import template_tool_calls


def call(arguments: str) -> dict:
    return {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}


def test_json_object_arguments_are_decoded() -> None:
    [out] = template_tool_calls([call('{"city": "Paris", "days": [1, 2]}')])
    assert out["function"] == {"name": "f", "arguments": {"city": "Paris", "days": [1, 2]}}
    assert out["id"] == "call_1" and out["type"] == "function"


def test_other_arguments_stay_as_sent() -> None:
    assert template_tool_calls([call("")])[0]["function"]["arguments"] == {}
    assert template_tool_calls([call("{broken")])[0]["function"]["arguments"] == "{broken"
    assert template_tool_calls([call("[1, 2]")])[0]["function"]["arguments"] == "[1, 2]"


def test_input_is_not_modified() -> None:
    original = call('{"a": 1}')
    template_tool_calls([original])
    assert original["function"]["arguments"] == '{"a": 1}'
