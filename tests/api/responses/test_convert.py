"""Chat's error params renamed to the Responses request's fields."""

from __future__ import annotations

import pytest

from mmserve.api.responses.convert import ParamMap

MAP = ParamMap(
    [
        ("instructions", ""),
        ("previous_response_id", "content"),
        ("input[0]", "content"),
        ("input[1]", ""),
        ("input[2]", "output"),
    ]
)


@pytest.mark.parametrize(
    ("chat", "responses"),
    [
        ("messages[0].content", "instructions"),
        ("messages[1].content[0].image_url", "previous_response_id"),
        ("messages[2].content[1].image_url", "input[0].content[1].image_url"),
        ("messages[3]", "input[1]"),
        ("messages[4].content", "input[2].output"),
        ("messages", "input"),
        ("response_format.json_schema.schema", "text.format.schema"),
        ("response_format.type", "text.format.type"),
        ("response_format", "text.format"),
        ("tools[2].function.parameters", "tools[2].parameters"),
        ("max_tokens", "max_output_tokens"),
        ("reasoning_effort", "reasoning.effort"),
        ("tool_choice", "tool_choice"),
        ("model", "model"),
        (None, None),
    ],
)
def test_chat_params_become_responses_params(chat: str | None, responses: str | None) -> None:
    assert MAP.rename(chat) == responses
