"""The Hermes <tool_call> parser on recorded outputs: calls, text, malformed calls, any chunking."""

from __future__ import annotations

import json

import pytest

from mmserve.chatformat.tools import HermesToolParser, ParsedCall, TextPiece, tool_parser
from tests.chatformat import recorded


def parse(text: str, names: set[str] | None = None, step: int | None = None) -> tuple[str, list[tuple[str, dict]]]:
    parser = tool_parser("hermes", names)
    chunks = [text] if step is None else [text[i : i + step] for i in range(0, len(text), step)]
    events = [e for c in chunks for e in parser.feed(c)] + parser.finish()
    text_out = "".join(e.text for e in events if isinstance(e, TextPiece))
    calls = [(e.name, json.loads(e.arguments)) for e in events if isinstance(e, ParsedCall)]
    return text_out, calls


def test_qwen3_call_after_reasoning_was_split_off() -> None:
    answer = recorded.QWEN3_THINKING.split("</think>\n\n", 1)[1]
    assert parse(answer) == ("", [("get_weather", {"location": "Paris, France", "unit": "celsius"})])


def test_hermes_2_pro_python_literal_and_hermes_3_json() -> None:
    assert parse(recorded.HERMES2_PRO) == ("", [("get_stock_fundamentals", {"symbol": "TSLA"})])
    assert parse(recorded.HERMES3) == ("", [("get_stock_price", {"symbol": "AAPL"})])


def test_qwen25_parallel_calls_in_order() -> None:
    text, calls = parse(recorded.QWEN25_PARALLEL)
    assert text == ""
    assert [n for n, _ in calls] == ["get_current_temperature", "get_temperature_date"]
    assert calls[1][1] == {"location": "San Francisco, CA, USA", "date": "2024-10-01"}


def test_text_before_a_call_is_content_without_the_padding() -> None:
    assert parse(recorded.QWEN3_TEXT_THEN_CALL) == (
        "I'll look up the current weather in Tokyo for you.",
        [("get_weather", {"city": "Tokyo"})],
    )


def test_truncated_call_is_returned_as_text() -> None:
    assert parse(recorded.TRUNCATED_CALL) == (recorded.TRUNCATED_CALL, [])


def test_unclosed_but_complete_call_is_a_call() -> None:
    assert parse('<tool_call>\n{"name": "f", "arguments": {"a": 1}}') == ("", [("f", {"a": 1})])


@pytest.mark.parametrize(
    "block",
    [
        "<tool_call>\nnot json at all\n</tool_call>",
        '<tool_call>\n["get_weather", {}]\n</tool_call>',
        '<tool_call>\n{"arguments": {"city": "Paris"}}\n</tool_call>',
        '<tool_call>\n{"name": "get_weather", "arguments": "not an object"}\n</tool_call>',
        "<tool_call>\n{'name': 'get_weather', 'arguments': {'s': {1, 2}}}\n</tool_call>",  # a set: not JSON
        '<tool_call>\n{"name": "get_weather", "arguments": {"x": NaN}}\n</tool_call>',
        "<tool_call>\n{'name': __import__('os').system('true')}\n</tool_call>",  # literal_eval runs nothing
        "<tool_call>\n" + "[" * 5000 + "]" * 5000 + "\n</tool_call>",
    ],
)
def test_malformed_calls_come_back_verbatim(block: str) -> None:
    text, calls = parse("Checking.\n" + block)
    assert calls == [] and text == "Checking.\n" + block


def test_unknown_function_is_text_when_names_are_given() -> None:
    block = '<tool_call>\n{"name": "launch_rocket", "arguments": {}}\n</tool_call>'
    assert parse(block, names={"get_weather"}) == (block, [])
    assert parse(block) == ("", [("launch_rocket", {})])


def test_arguments_as_json_string_and_parameters_key() -> None:
    assert parse('<tool_call>{"name": "f", "arguments": "{\\"a\\": 2}"}</tool_call>')[1] == [("f", {"a": 2})]
    assert parse('<tool_call>{"name": "f", "parameters": {"a": 3}}</tool_call>')[1] == [("f", {"a": 3})]
    assert parse('<tool_call>{"name": "f"}</tool_call>')[1] == [("f", {})]


@pytest.mark.parametrize(
    "text",
    [recorded.QWEN25_PARALLEL, recorded.QWEN3_TEXT_THEN_CALL, recorded.TRUNCATED_CALL, recorded.HERMES2_PRO],
)
@pytest.mark.parametrize("step", [1, 2, 4, 11])
def test_any_chunking_gives_the_same_result(text: str, step: int) -> None:
    assert parse(text, step=step) == parse(text)


def test_plain_text_streams_without_waiting_for_the_end() -> None:
    parser = HermesToolParser()
    assert [e.text for e in parser.feed("Hello world") if isinstance(e, TextPiece)] == ["Hello world"]
    assert parser.feed(" and <tool") == [TextPiece(" and")]  # "<tool" might open a call: held back
    assert parser.feed("s>") == [TextPiece(" <tools>")]
