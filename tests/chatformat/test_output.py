"""A choice's parsed output: reasoning, content and tool calls together, with token accounting."""

from __future__ import annotations

import json

from mmserve.chatformat.output import OutputFormat
from tests.chatformat import recorded

FULL = OutputFormat(reasoning_format="think-tags", tool_call_format="hermes", tool_names=frozenset({"get_weather"}))


def run(fmt: OutputFormat, text: str, *, prompt: str | None = None, step: int = 3):  # type: ignore[no-untyped-def]
    out = fmt.parser(prompt)
    events = []
    for n, i in enumerate(range(0, len(text), step), start=1):
        events += out.feed(text[i : i + step], completion_tokens=n)
    events += out.finish(completion_tokens=len(range(0, len(text), step)))
    return out, events


def test_reasoning_then_tool_call() -> None:
    out, events = run(FULL, recorded.QWEN3_THINKING)
    assert [e.kind for e in events][-1] == "tool_call"
    assert {e.kind for e in events[:-1]} == {"reasoning"}
    assert out.message_reasoning and out.message_reasoning.startswith("Okay, the user is asking")
    assert out.message_content is None  # only a call: content is null, as OpenAI returns it
    [call] = out.tool_calls
    assert call.index == 0 and call.id.startswith("call_") and len(call.id) == 29
    assert json.loads(call.arguments) == {"location": "Paris, France", "unit": "celsius"}
    assert out.finish_reason("stop") == "tool_calls"
    assert out.finish_reason("length") == "length"


def test_reasoning_tokens_are_counted_up_to_the_closing_tag() -> None:
    text = recorded.QWEN3_ANSWER
    out, _ = run(OutputFormat(reasoning_format="think-tags"), text, step=1)
    closing_at = text.index("</think>") + len("</think>")  # one "token" per character here
    assert out.reasoning_tokens == closing_at
    cut, _ = run(OutputFormat(reasoning_format="think-tags"), recorded.QWQ_CUT, prompt=recorded.QWQ_PROMPT, step=1)
    assert cut.reasoning_tokens == len(recorded.QWQ_CUT)  # never closed: all of it
    plain, _ = run(OutputFormat(reasoning_format="think-tags"), "Just an answer.")
    assert plain.reasoning_tokens == 0 and plain.message_reasoning is None


def test_no_parsers_pass_text_through_unchanged() -> None:
    text = "<think>not parsed</think> <tool_call>{}</tool_call>  \n"
    out, events = run(OutputFormat(), text)
    assert out.message_content == text and {e.kind for e in events} == {"content"}
    assert out.finish_reason("stop") == "stop"


def test_parallel_tool_calls_false_keeps_the_first_call() -> None:
    fmt = OutputFormat(tool_call_format="hermes", parallel_tool_calls=False)
    out, events = run(fmt, recorded.QWEN25_PARALLEL)
    assert [c.name for c in out.tool_calls] == ["get_current_temperature"]
    assert [e.kind for e in events] == ["tool_call"]


def test_calls_inside_the_trace_are_reasoning_not_calls() -> None:
    text = '<think>I could write <tool_call>{"name": "get_weather"}</tool_call> here.</think>Sunny.'
    out, _ = run(FULL, text)
    assert out.tool_calls == [] and out.message_content == "Sunny."
    assert out.message_reasoning == 'I could write <tool_call>{"name": "get_weather"}</tool_call> here.'


def test_malformed_call_is_content() -> None:
    out, _ = run(FULL, recorded.TRUNCATED_CALL)
    assert out.tool_calls == [] and out.message_content == recorded.TRUNCATED_CALL
    assert out.finish_reason("length") == "length"
