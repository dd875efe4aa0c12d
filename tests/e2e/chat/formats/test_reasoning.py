"""Reasoning through the openai SDK: reasoning_content split, streamed, switched and counted."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers.scripted import LONG_THOUGHT, SCRIPTS

HELLO = next(s for s in SCRIPTS if s.trigger == "Say hello")


def ask(client: OpenAI, system: str | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": "Say hello, please."})
    return client.chat.completions.create(model="tool-lm", messages=messages, **kwargs)  # type: ignore[call-overload]


def test_reasoning_is_split_from_the_answer(client: OpenAI) -> None:
    r = ask(client)
    msg = r.choices[0].message
    assert msg.reasoning_content == HELLO.think  # type: ignore[attr-defined]
    assert msg.content == HELLO.answer
    assert r.choices[0].finish_reason == "stop"
    assert r.usage and r.usage.completion_tokens_details
    reasoning_tokens = r.usage.completion_tokens_details.reasoning_tokens or 0
    assert 0 < reasoning_tokens < r.usage.completion_tokens


def test_streamed_reasoning_arrives_in_pieces_before_the_answer(client: OpenAI) -> None:
    whole = ask(client)
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    kinds: list[str] = []
    reasoning, content = [], []
    for c in chunks:
        if not c.choices:
            continue
        delta = c.choices[0].delta
        piece = getattr(delta, "reasoning_content", None)
        if piece:
            kinds.append("reasoning")
            reasoning.append(piece)
        if delta.content:
            kinds.append("content")
            content.append(delta.content)
    assert len(reasoning) > 3 and len(content) > 3  # token by token, across chunk boundaries
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")  # all reasoning first
    assert not any("<think>" in p or "</think>" in p for p in reasoning + content)
    assert "".join(reasoning) == whole.choices[0].message.reasoning_content  # type: ignore[attr-defined]
    assert "".join(content) == whole.choices[0].message.content
    usage = chunks[-1].usage
    assert usage and usage.completion_tokens_details and whole.usage and whole.usage.completion_tokens_details
    assert usage.completion_tokens_details.reasoning_tokens == whole.usage.completion_tokens_details.reasoning_tokens


@pytest.mark.parametrize(
    "system,kwargs,thinks",
    [
        ("You are helpful. /no_think", {}, False),
        ("You are helpful. /think", {}, True),
        ("/think\nActually, no. /no_think", {}, False),  # the last switch wins
        (None, {"reasoning_effort": "none"}, False),
        (None, {"reasoning_effort": "low"}, True),
        ("You are helpful. /no_think", {"reasoning_effort": "high"}, True),  # the request field beats the prompt
        (None, {"extra_body": {"chat_template_kwargs": {"enable_thinking": False}}}, False),
        (
            None,
            {"reasoning_effort": "none", "extra_body": {"chat_template_kwargs": {"enable_thinking": True}}},
            True,
        ),
    ],
)
def test_thinking_switches(client: OpenAI, system: str | None, kwargs: dict, thinks: bool) -> None:
    r = ask(client, system, **kwargs)
    msg = r.choices[0].message
    assert msg.content == HELLO.answer
    assert (getattr(msg, "reasoning_content", None) == HELLO.think) is thinks
    assert r.usage and r.usage.completion_tokens_details
    assert ((r.usage.completion_tokens_details.reasoning_tokens or 0) > 0) is thinks


def test_cut_off_while_thinking(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="tool-lm", messages=[{"role": "user", "content": "Think at length."}], max_tokens=12
    )
    choice = r.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content == "" and LONG_THOUGHT.startswith(choice.message.reasoning_content or "-")  # type: ignore[attr-defined]
    assert r.usage and r.usage.completion_tokens_details
    assert r.usage.completion_tokens_details.reasoning_tokens == r.usage.completion_tokens == 12


def test_reasoning_in_history_reaches_the_template(client: OpenAI) -> None:
    history = [
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Again"},
    ]
    plain = client.chat.completions.create(model="tool-lm", messages=history, max_tokens=1)  # type: ignore[arg-type]
    history[1]["reasoning_content"] = "A greeting deserves a greeting."
    with_trace = client.chat.completions.create(model="tool-lm", messages=history, max_tokens=1)  # type: ignore[arg-type]
    assert plain.usage and with_trace.usage and with_trace.usage.prompt_tokens > plain.usage.prompt_tokens


@pytest.mark.parametrize(
    "body,param",
    [
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"chat_template_kwargs": {"add_generation_prompt": False}}, "chat_template_kwargs.add_generation_prompt"),
        ({"chat_template_kwargs": {"bad key": 1}}, "chat_template_kwargs.bad key"),
        ({"chat_template_kwargs": {"enable_thinking": "yes"}}, "chat_template_kwargs.enable_thinking"),
        # names that collide with the template call itself were a 500 (TypeError: multiple values)
        ({"chat_template_kwargs": {"self": 1}}, "chat_template_kwargs.self"),
        ({"chat_template_kwargs": {"sanitize_control_tokens": False}}, "chat_template_kwargs.sanitize_control_tokens"),
        ({"chat_template_kwargs": {"conversations": []}}, "chat_template_kwargs.conversations"),
    ],
)
def test_bad_reasoning_fields_are_400s(client: OpenAI, body: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, extra_body=body) if "reasoning_effort" not in body else ask(client, **body)
    assert e.value.body["param"] == param  # type: ignore[index]


def test_plain_models_are_unchanged(client: OpenAI, formats_server: object) -> None:
    """A card without formats returns the engine's text as it is, with no reasoning fields."""
    r = client.chat.completions.create(model="demo-vlm", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    assert getattr(r.choices[0].message, "reasoning_content", None) is None
    raw = httpx.post(
        f"{client.base_url}chat/completions",
        json={"model": "demo-vlm", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5},
        timeout=30,
    ).json()
    assert "reasoning_content" not in raw["choices"][0]["message"]
    assert raw["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_n_streamed_choices_are_parsed_separately(client: OpenAI) -> None:
    chunks = list(ask(client, n=2, stream=True, stream_options={"include_usage": True}))
    for i in (0, 1):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == i]
        assert "".join(getattr(c.delta, "reasoning_content", None) or "" for c in mine) == HELLO.think
        assert "".join(c.delta.content or "" for c in mine) == HELLO.answer
        assert [c.finish_reason for c in mine if c.finish_reason] == ["stop"]
    usage = chunks[-1].usage
    single = ask(client).usage
    assert usage and single and usage.completion_tokens_details and single.completion_tokens_details
    assert usage.completion_tokens_details.reasoning_tokens == 2 * (
        single.completion_tokens_details.reasoning_tokens or 0
    )
