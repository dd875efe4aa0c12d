"""Request features resolved against a card: reasoning switches, tool_choice, constraints."""

from __future__ import annotations

from typing import Any

import pytest

from mmserve.api.chat.features import resolve_features
from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.cards import ModelCard
from mmserve.errors import InvalidRequestError

CARD = ModelCard(
    id="m",
    task="chat",
    engine="transformers-chat",
    capabilities={"reasoning_format": "think-tags", "tool_call_format": "hermes"},
)
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def request(system: str | None = None, **kwargs: Any) -> ChatCompletionRequest:
    messages = [{"role": "system", "content": system}] if system else []
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [*messages, {"role": "user", "content": "hi"}], **kwargs}
    )


@pytest.mark.parametrize(
    "system,expected",
    [
        ("Be brief /no_think", False),
        ("/think", True),
        ("/think then /no_think", False),
        ("see /thinking and path/no_think and /no_thinkers", None),  # only the bare switch counts
        (None, None),
    ],
)
def test_system_prompt_switch(system: str | None, expected: bool | None) -> None:
    features = resolve_features(request(system), CARD)
    assert features.reasoning is expected
    assert features.template_kwargs.get("enable_thinking") is expected


def test_switch_in_developer_message_and_parts() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "Rules. /no_think"}]},
                {"role": "user", "content": "/think"},  # a user message is not a system prompt
            ],
        }
    )
    assert resolve_features(req, CARD).reasoning is False


def test_thinking_off_drops_the_trace_from_grammars() -> None:
    fmt = {"type": "json_object"}
    assert resolve_features(request(response_format=fmt), CARD).constraint.reasoning_format == "think-tags"  # type: ignore[union-attr]
    off = resolve_features(request(response_format=fmt, reasoning_effort="none"), CARD)
    assert off.constraint and off.constraint.reasoning_format is None
    assert off.output.reasoning_format == "think-tags"  # still parsed, in case the model thinks anyway


def test_tool_choice_resolution() -> None:
    auto = resolve_features(request(tools=[TOOL]), CARD)
    assert auto.tool_choice == "auto" and auto.constraint is None and auto.output.tool_names == {"f"}
    none = resolve_features(request(tools=[TOOL], tool_choice="none"), CARD)
    assert none.tools is None and none.output.tool_call_format is None
    named = resolve_features(request(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "f"}}), CARD)
    assert named.tool_choice == "function:f"
    assert named.constraint and named.constraint.require_tool_call and not named.constraint.parallel_tool_calls
    required = resolve_features(request(tools=[TOOL], tool_choice="required", parallel_tool_calls=False), CARD)
    assert required.constraint and not required.constraint.parallel_tool_calls
    assert not required.output.parallel_tool_calls


def test_too_many_tools() -> None:
    tools = [{"type": "function", "function": {"name": f"f{i}"}} for i in range(5)]
    with pytest.raises(InvalidRequestError) as e:
        resolve_features(request(tools=tools), CARD, max_tools=4)
    assert e.value.param == "tools"


def test_deeply_nested_schema_is_a_400_not_a_crash() -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(3000):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(InvalidRequestError) as e:
        resolve_features(request(response_format={"type": "json_schema", "json_schema": {"schema": schema}}), CARD)
    assert e.value.param == "response_format.json_schema.schema"


@pytest.mark.parametrize("declared", [[], {}, 5, None, True])
@pytest.mark.parametrize("where", ["response_format", "tools"])
def test_a_schema_whose_draft_is_not_a_string_is_a_400(where: str, declared: Any) -> None:
    schema = {"$schema": declared, "type": "object"}
    if where == "tools":
        req = request(tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}])
        param = "tools[0].function.parameters"
    else:
        req = request(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
        param = "response_format.json_schema.schema"
    with pytest.raises(InvalidRequestError) as e:
        resolve_features(req, CARD)
    assert e.value.param == param and "$schema" in e.value.message


@pytest.mark.parametrize("strict", ["no", 1, [1]])
def test_json_schema_strict_must_be_a_boolean(strict: Any) -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "x", "strict": strict, "schema": {"type": "object"}}}
    with pytest.raises(InvalidRequestError) as e:
        resolve_features(request(response_format=rf), CARD)
    assert e.value.param == "response_format.json_schema.strict"


def test_every_name_of_the_template_call_is_refused() -> None:
    """Each parameter of the call chain that renders a chat template (tokenizer, processor, the
    jinja renderer) collides with a template variable of the same name: a 500 before ("self")."""
    import inspect

    from transformers import PreTrainedTokenizerBase, ProcessorMixin
    from transformers.utils.chat_template_utils import render_jinja_template

    names = {"self"}
    for f in (PreTrainedTokenizerBase.apply_chat_template, ProcessorMixin.apply_chat_template, render_jinja_template):
        names |= set(inspect.signature(f).parameters)
    for name in sorted(names):
        with pytest.raises(InvalidRequestError) as e:
            resolve_features(request(chat_template_kwargs={name: 1}), CARD)
        assert e.value.param == f"chat_template_kwargs.{name}"
    assert resolve_features(request(chat_template_kwargs={"custom_flag": 1}), CARD).template_kwargs == {
        "custom_flag": 1
    }
