"""Tool calling through the openai SDK: a round trip, streamed deltas, tool_choice and bad input."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from openai import OpenAI

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "enum": ["Paris", "Rome", "Tokyo"]},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"enum": ["UTC", "CET"]}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}


def test_tool_call_round_trip(client: OpenAI) -> None:
    messages: list = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat.completions.create(model="tool-lm", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.reasoning_content  # type: ignore[attr-defined]
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}  # type: ignore[union-attr]

    # The assistant turn goes back as the SDK returned it, then the tool's result.
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "21 degrees and sunny"})
    answer = client.chat.completions.create(model="tool-lm", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content == "The tool says: 21 degrees and sunny"  # the model read the result


def test_parallel_calls_stream_as_deltas_the_sdk_accumulates(client: OpenAI) -> None:
    messages = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    with client.chat.completions.stream(model="tool-lm", messages=messages, tools=[WEATHER]) as stream:  # type: ignore[arg-type, list-item]
        raw = [event.chunk for event in stream if event.type == "chunk"]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    assert len({c.id for c in calls}) == 2
    assert final.choices[0].finish_reason == "tool_calls"
    # OpenAI's shape: each call opens with id + name + empty arguments, then the arguments by index
    deltas = [tc for c in raw if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(d.index, d.id is not None, d.function.name if d.function else None) for d in deltas] == [
        (0, True, "get_weather"),
        (0, False, None),
        (1, True, "get_weather"),
        (1, False, None),
    ]
    assert deltas[0].function and deltas[0].function.arguments == ""


def test_parallel_tool_calls_false_returns_one_call(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="tool-lm",
        messages=[{"role": "user", "content": "Weather in Paris and Rome?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        parallel_tool_calls=False,
    )
    assert len(r.choices[0].message.tool_calls or []) == 1


@pytest.mark.parametrize("prompt", ["Try a broken call.", "Please launch a rocket."])
@pytest.mark.parametrize("stream", [False, True])
def test_malformed_or_unknown_calls_come_back_as_text(client: OpenAI, prompt: str, stream: bool) -> None:
    kwargs = {"model": "tool-lm", "messages": [{"role": "user", "content": prompt}], "tools": [WEATHER]}
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))  # type: ignore[call-overload]
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        r = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
        content, finish = r.choices[0].message.content, [r.choices[0].finish_reason]
        assert r.choices[0].message.tool_calls is None
    assert "<tool_call>" in content and finish == ["stop"]


def test_tool_choice_none_leaves_tools_out(client: OpenAI) -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    auto = client.chat.completions.create(model="tool-lm", messages=messages, tools=[WEATHER], max_tokens=1)  # type: ignore[arg-type, list-item]
    none = client.chat.completions.create(
        model="tool-lm",
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
    )
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"
    assert none.usage and auto.usage and none.usage.prompt_tokens < auto.usage.prompt_tokens


@pytest.mark.parametrize("seed", range(4))
def test_tool_choice_required_makes_even_random_weights_call(client: OpenAI, seed: int) -> None:
    r = client.chat.completions.create(
        model="tool-lm-random",
        messages=[{"role": "user", "content": "Hello"}],
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice="required",
        reasoning_effort="none",
        seed=seed,
        max_tokens=200,
    )
    calls = r.choices[0].message.tool_calls or []
    assert calls and r.choices[0].finish_reason == "tool_calls"
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, TIME)}
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])  # type: ignore[union-attr]


def test_named_tool_choice_calls_that_function_once(client: OpenAI) -> None:
    for seed in range(3):
        r = client.chat.completions.create(
            model="tool-lm-random",
            messages=[{"role": "user", "content": "Hello"}],
            tools=[WEATHER, TIME],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            reasoning_effort="none",
            seed=seed,
        )
        [call] = r.choices[0].message.tool_calls or []
        assert call.function.name == "get_time"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments)["zone"] in ("UTC", "CET")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "kwargs,param",
    [
        ({"model": "demo-vlm", "tools": [WEATHER]}, "tools"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]},
            "tools[0].function.parameters",
        ),
    ],
)
def test_bad_tool_requests_are_400s_naming_the_field(client: OpenAI, kwargs: dict, param: str) -> None:
    body = {"model": "tool-lm", "messages": [{"role": "user", "content": "Hi"}], **kwargs}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**body)
    assert e.value.body["param"] == param  # type: ignore[index]
