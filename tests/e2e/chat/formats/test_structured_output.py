"""response_format through the openai SDK: json_schema enforced while decoding, json_object, bad schemas."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field

from tests.helpers.images import data_uri

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 10},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"enum": ["admin", "user", "guest"]},
        "verified": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 2},
        "manager": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/ref"}]},
    },
    "required": ["name", "age", "role", "verified", "tags", "manager"],
    "additionalProperties": False,
    "$defs": {
        "ref": {
            "type": "object",
            "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 99}},
            "required": ["id"],
            "additionalProperties": False,
        }
    },
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}


@pytest.mark.parametrize("seed", range(6))
def test_json_schema_output_validates_for_every_seed(client: OpenAI, seed: int) -> None:
    """Random weights, sampled at temperature 1: only the grammar makes this valid."""
    r = client.chat.completions.create(
        model="tool-lm-random",
        messages=[{"role": "user", "content": "Describe a person."}],
        response_format=FORMAT,  # type: ignore[arg-type]
        reasoning_effort="none",
        temperature=1.0,
        seed=seed,
        max_tokens=200,
    )
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), PERSON)


def test_streamed_json_schema_output_validates(client: OpenAI) -> None:
    chunks = client.chat.completions.create(
        model="tool-lm-random",
        messages=[{"role": "user", "content": "Describe a person."}],
        response_format=FORMAT,  # type: ignore[arg-type]
        reasoning_effort="none",
        seed=42,
        max_tokens=200,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    jsonschema.validate(json.loads(text), PERSON)


def test_vision_model_with_an_image_and_n_choices(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}, "share": {"type": "number", "maximum": 1}},
        "required": ["color", "share"],
        "additionalProperties": False,
    }
    r = client.chat.completions.create(
        model="demo-vlm",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What color is this?"},
                    {"type": "image_url", "image_url": {"url": data_uri()}},
                ],
            }
        ],
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        n=3,
        seed=1,
    )
    assert len(r.choices) == 3
    for choice in r.choices:
        jsonschema.validate(json.loads(choice.message.content or ""), schema)


def test_a_model_that_wants_to_talk_still_returns_the_schema(client: OpenAI) -> None:
    """The scripted model would say 'I am a tiny test model.'; the grammar overrules it."""
    r = client.chat.completions.create(
        model="tool-lm",
        messages=[{"role": "user", "content": "Who are you?"}],
        response_format=FORMAT,  # type: ignore[arg-type]
        seed=3,
        max_tokens=200,
    )
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), PERSON)


def test_reasoning_then_json(client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature": {"type": "integer"}},
        "required": ["city", "temperature"],
        "additionalProperties": False,
    }
    r = client.chat.completions.create(
        model="tool-lm",
        messages=[{"role": "user", "content": "Give me the weather as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema, "strict": True}},
    )
    msg = r.choices[0].message
    assert msg.reasoning_content == "They want JSON with the city and temperature."  # type: ignore[attr-defined]
    assert json.loads(msg.content or "") == {"city": "Paris", "temperature": 21}
    json_object = client.chat.completions.create(
        model="tool-lm",
        messages=[{"role": "user", "content": "/no_think Give me the weather as JSON."}],
        response_format={"type": "json_object"},
        reasoning_effort="none",
    )
    assert json.loads(json_object.choices[0].message.content or "") == {"city": "Paris", "temperature": 21}


class Colleague(BaseModel):
    name: str = Field(max_length=8)
    level: int = Field(ge=1, le=5)
    remote: bool


def test_sdk_parse_helper(client: OpenAI) -> None:
    """client.chat.completions.parse(response_format=PydanticModel): the SDK's structured-output path."""
    for seed in range(3):
        r = client.chat.completions.parse(
            model="tool-lm-random",
            messages=[{"role": "user", "content": "A colleague, please."}],
            response_format=Colleague,
            reasoning_effort="none",
            seed=seed,
            max_tokens=100,
        )
        parsed = r.choices[0].message.parsed
        assert isinstance(parsed, Colleague) and 1 <= parsed.level <= 5


@pytest.mark.parametrize(
    "response_format,param,fragment",
    [
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "strin"}}}},
            },
            "response_format.json_schema.schema",
            "not a valid JSON Schema",
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "format": "no-such"}, "strict": True},
            },
            "response_format",
            "Unknown format",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}},
            "response_format.json_schema.schema",
            "",
        ),
        ({"type": "json_schema"}, "response_format.json_schema", ""),
        ({"type": "xml"}, "response_format.type", ""),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_invalid_schema_is_a_400(
    client: OpenAI, response_format: dict, param: str, fragment: str, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="tool-lm-random",
            messages=[{"role": "user", "content": "Hi"}],
            response_format=response_format,  # type: ignore[arg-type]
            stream=stream,
        )
    assert e.value.status_code == 400
    assert e.value.body["param"] == param  # type: ignore[index]
    assert fragment in e.value.body["message"]  # type: ignore[index]
