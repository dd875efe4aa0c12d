"""POST /v1/responses through the openai SDK: text, images, files, reasoning, tools, JSON, usage."""

from __future__ import annotations

import base64
import json
from typing import Literal

import httpx
import jsonschema
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field

from tests.helpers.httpserver import TargetServer
from tests.helpers.images import data_uri, image_bytes
from tests.helpers.scripted import SCRIPTS

HELLO = next(s for s in SCRIPTS if s.trigger == "Say hello")
WEATHER_SCRIPT = next(s for s in SCRIPTS if s.trigger == "weather in Paris")
WEATHER = {
    "type": "function",
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
}
TIME = {
    "type": "function",
    "name": "get_time",
    "parameters": {
        "type": "object",
        "properties": {"zone": {"enum": ["UTC", "CET"]}},
        "required": ["zone"],
        "additionalProperties": False,
    },
}


def test_text_input_gives_reasoning_and_a_message(client: OpenAI) -> None:
    r = client.responses.create(model="tool-lm", input="Say hello")
    assert r.object == "response" and r.id.startswith("resp_") and r.status == "completed" and r.model == "tool-lm"
    assert [item.type for item in r.output] == ["reasoning", "message"]
    reasoning = r.output[0]
    assert reasoning.content and reasoning.content[0].text == HELLO.think  # type: ignore[union-attr]
    assert r.output_text == HELLO.answer
    assert r.usage is not None and 0 < r.usage.output_tokens_details.reasoning_tokens < r.usage.output_tokens
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


@pytest.mark.parametrize(
    "switch", [{"instructions": "Be brief. /no_think"}, {"reasoning": {"effort": "none"}}], ids=["soft", "effort"]
)
def test_thinking_switched_off_leaves_no_reasoning_item(client: OpenAI, switch: dict) -> None:
    r = client.responses.create(model="tool-lm", input="Say hello", **switch)
    assert [item.type for item in r.output] == ["message"] and r.output_text == HELLO.answer
    assert r.usage is not None and r.usage.output_tokens_details.reasoning_tokens == 0


def test_instructions_are_a_system_message(client: OpenAI) -> None:
    plain = client.responses.create(model="tool-lm", input="Say hello", max_output_tokens=1)
    told = client.responses.create(
        model="tool-lm", input="Say hello", instructions="You are terse.", max_output_tokens=1
    )
    assert told.usage and plain.usage and told.usage.input_tokens > plain.usage.input_tokens
    assert told.instructions == "You are terse."


def test_input_items_with_images_by_data_uri_and_url(client: OpenAI) -> None:
    def ask(*images: str) -> int:
        parts = [{"type": "input_text", "text": "What is this?"}]
        parts += [{"type": "input_image", "image_url": url} for url in images]
        r = client.responses.create(model="demo-vlm", input=[{"role": "user", "content": parts}], max_output_tokens=2)
        assert r.usage is not None
        return r.usage.input_tokens

    with TargetServer() as target:
        target.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, image_bytes((64, 64)))
        text_only, one, two = ask(), ask(data_uri()), ask(data_uri(), target.url("/cat.png"))
        assert target.paths() == ["/cat.png"]
    assert one - text_only == 16 and two - one == 16  # the demo VLM's 16 tokens per image


def test_a_text_file_is_read_into_the_prompt(client: OpenAI) -> None:
    note = "data:text/plain;base64," + base64.b64encode(b"Say hello").decode()
    file_part = {"type": "input_file", "filename": "note.txt", "file_data": note}
    r = client.responses.create(model="tool-lm", input=[{"role": "user", "content": [file_part]}])
    assert r.output_text == HELLO.answer  # the scripted model read the file's text
    with TargetServer() as target:
        target.routes["/note.md"] = (200, {"Content-Type": "text/markdown"}, b"# Say hello")
        by_url = {"type": "input_file", "file_url": target.url("/note.md")}
        r = client.responses.create(model="tool-lm", input=[{"role": "user", "content": [by_url]}])
    assert r.output_text == HELLO.answer


def test_function_call_then_its_output_through_previous_response_id(client: OpenAI) -> None:
    first = client.responses.create(model="tool-lm", input="What is the weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris", "unit": "celsius"}
    assert calls[0].call_id.startswith("call_") and first.output_text == ""
    result = {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temperature": 21}'}
    answer = client.responses.create(
        model="tool-lm",
        previous_response_id=first.id,
        input=[result],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert answer.output_text == 'The tool says: {"temperature": 21}'
    assert answer.previous_response_id == first.id
    # the same conversation sent whole, without a stored response
    stateless = client.responses.create(
        model="tool-lm",
        store=False,
        input=[{"role": "user", "content": "What is the weather in Paris?"}, *first.output, result],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert stateless.output_text == answer.output_text
    assert stateless.usage and answer.usage and stateless.usage.input_tokens == answer.usage.input_tokens


def test_tool_choice_required_makes_random_weights_call(client: OpenAI) -> None:
    r = client.responses.create(
        model="tool-lm-random",
        input="anything",
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice="required",
        reasoning={"effort": "none"},
    )
    calls = [item for item in r.output if item.type == "function_call"]
    assert calls, r.output
    schemas = {t["name"]: t["parameters"] for t in (WEATHER, TIME)}
    for call in calls:
        jsonschema.validate(json.loads(call.arguments), schemas[call.name])
    named = client.responses.create(
        model="tool-lm-random",
        input="anything",
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_time"},
        reasoning={"effort": "none"},
    )
    assert [item.name for item in named.output if item.type == "function_call"] == ["get_time"]


class Rating(BaseModel):
    stars: int = Field(ge=1, le=5)
    verdict: Literal["good", "bad"]


def test_text_format_json_schema_is_enforced_and_parse_works(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["stars"],
        "additionalProperties": False,
    }
    r = client.responses.create(
        model="tool-lm-random",
        input="Rate it.",
        text={"format": {"type": "json_schema", "name": "rating", "schema": schema, "strict": True}},
        reasoning={"effort": "none"},
        max_output_tokens=64,
    )
    jsonschema.validate(json.loads(r.output_text), schema)
    assert r.text is not None and r.text.format.type == "json_schema"
    parsed = client.responses.parse(
        model="tool-lm-random", input="Rate it.", text_format=Rating, reasoning={"effort": "none"}
    )
    assert isinstance(parsed.output_parsed, Rating) and 1 <= parsed.output_parsed.stars <= 5


def test_stream_events_build_the_same_response(client: OpenAI) -> None:
    plain = client.responses.create(model="tool-lm", input="Say hello")
    with client.responses.stream(model="tool-lm", input="Say hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.reasoning_text.delta" in kinds and "response.output_text.delta" in kinds
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_text.delta")
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(numbers)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert deltas == final.output_text == plain.output_text
    assert [i.type for i in final.output] == [i.type for i in plain.output]
    assert final.usage == plain.usage and final.status == "completed"


def test_stream_with_function_calls(client: OpenAI) -> None:
    with client.responses.stream(
        model="tool-lm",
        input="What is the weather in Paris and Rome?",
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments)["city"] for e in done] == ["Paris", "Rome"]  # type: ignore[union-attr]
    calls = [i for i in final.output if i.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather", "get_weather"] and calls[0].call_id != calls[1].call_id


def test_raw_sse_names_each_event(url: str) -> None:
    body = {"model": "tool-lm", "input": "Say hello", "stream": True}
    with httpx.stream("POST", f"{url}/responses", json=body, timeout=60) as resp:
        lines = [line for line in resp.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    datas = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert names == [d["type"] for d in datas] and names[-1] == "response.completed"
    assert not any(line.startswith("data: [DONE]") for line in lines)


def test_max_output_tokens_makes_an_incomplete_response(client: OpenAI, url: str) -> None:
    r = client.responses.create(model="tool-lm", input="Think at length.", max_output_tokens=12)
    assert r.status == "incomplete" and r.incomplete_details and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage and r.usage.output_tokens == 12 and r.output[0].type == "reasoning"
    body = {"model": "tool-lm", "input": "Think at length.", "max_output_tokens": 12, "stream": True}
    with httpx.stream("POST", f"{url}/responses", json=body, timeout=60) as resp:
        last = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")][-1]
    assert last["type"] == "response.incomplete" and last["response"]["status"] == "incomplete"


def test_usage_is_metered(client: OpenAI, url: str) -> None:
    def totals() -> dict:
        return httpx.get(f"{url}/usage", params={"model": "tool-lm"}, timeout=30).json()["total"]

    before = totals()
    r = client.responses.create(model="tool-lm", input="Say hello")
    after = totals()
    assert r.usage is not None and after["requests"] - before["requests"] == 1
    assert after["input_tokens"] - before["input_tokens"] == r.usage.input_tokens
    assert after["output_tokens"] - before["output_tokens"] == r.usage.output_tokens


def test_auto_routes_a_tool_request_to_a_tool_model(url: str) -> None:
    body = {"model": "auto", "input": "What is the weather in Paris?", "tools": [WEATHER], "max_output_tokens": 4}
    r = httpx.post(f"{url}/responses", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert (
        r.json()["model"] in ("tool-lm", "tool-lm-random", "demo-tools") and "demo-vlm" in r.headers["x-mmserve-route"]
    )


def test_logprobs_of_the_message_text(client: OpenAI) -> None:
    kwargs = {
        "model": "tool-lm",
        "input": "Say hello",
        "reasoning": {"effort": "none"},
        "include": ["message.output_text.logprobs"],
        "top_logprobs": 2,
    }
    r = client.responses.create(**kwargs)  # type: ignore[call-overload]
    part = r.output[0].content[0]  # type: ignore[union-attr]
    assert part.logprobs and "".join(e.token for e in part.logprobs) == r.output_text == HELLO.answer
    assert all(e.logprob <= 0 and len(e.top_logprobs) == 2 for e in part.logprobs)
    with client.responses.stream(**kwargs) as stream:  # type: ignore[call-overload]
        events = list(stream)
    streamed = [e for ev in events if ev.type == "response.output_text.delta" for e in ev.logprobs]
    assert [e.token for e in streamed] == [e.token for e in part.logprobs]
    done = next(ev for ev in events if ev.type == "response.output_text.done")
    assert [e.token for e in done.logprobs] == [e.token for e in part.logprobs]  # type: ignore[union-attr]
    plain = client.responses.create(model="tool-lm", input="Say hello", reasoning={"effort": "none"})
    assert plain.output[0].content[0].logprobs == []  # type: ignore[union-attr]
