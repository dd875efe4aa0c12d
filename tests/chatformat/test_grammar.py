"""Grammars for response_format and tool_choice, checked with llguidance on real tokenizers."""

from __future__ import annotations

from typing import Any

import pytest

from mmserve.catalog.builders.tokenizer import train_bpe_tokenizer
from mmserve.catalog.builders.toollm import tool_tokenizer
from mmserve.chatformat.grammar import OutputConstraint, ToolSpec
from mmserve.engines.transformers_chat.constrained import GrammarCompiler
from mmserve.errors import InvalidRequestError

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "temp": {"type": "integer"}},
    "required": ["city", "temp"],
    "additionalProperties": False,
}
WEATHER = ToolSpec("get_weather", {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}}})
NOOP = ToolSpec("noop")


@pytest.fixture(scope="module", params=["tags-are-tokens", "tags-are-text"])
def compiler(request: pytest.FixtureRequest) -> GrammarCompiler:
    tok = tool_tokenizer() if request.param == "tags-are-tokens" else train_bpe_tokenizer()
    return GrammarCompiler(tok, len(tok), [tok.eos_token_id])


def accepts(compiler: GrammarCompiler, c: OutputConstraint, text: str, prompt: str | None = None) -> bool:
    import llguidance

    grammar = c.grammar(prompt, token_tags=compiler.token_tags(c))
    matcher = llguidance.LLMatcher(compiler._ll_tokenizer(), grammar, log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    ids = compiler.tokenizer.encode(text, add_special_tokens=False)
    return matcher.try_consume_tokens(ids) == len(ids) and matcher.is_accepting()


def test_token_tags_found_only_where_they_are_tokens(compiler: GrammarCompiler) -> None:
    c = OutputConstraint(tools=(WEATHER,), tool_call_format="hermes", reasoning_format="think-tags")
    tags = compiler.token_tags(c)
    expected = (
        {"<think>", "</think>", "<tool_call>", "</tool_call>"} if "<think>" in compiler.tokenizer.vocab else set()
    )
    assert tags == expected


def test_json_schema_answer(compiler: GrammarCompiler) -> None:
    c = OutputConstraint(json_schema=SCHEMA)
    assert accepts(compiler, c, '{"city": "Paris", "temp": 21}')
    assert not accepts(compiler, c, '{"city":"Paris","temp":21}')  # compact style is part of the grammar
    assert not accepts(compiler, c, '{"city": "Paris"}')
    assert not accepts(compiler, c, '{"city": "Paris", "temp": 21, "x": 1}')
    assert not accepts(compiler, c, "Sure! " + '{"city": "Paris", "temp": 21}')


def test_reasoning_may_come_first(compiler: GrammarCompiler) -> None:
    c = OutputConstraint(json_schema=SCHEMA, reasoning_format="think-tags")
    answer = '{"city": "Rome", "temp": 30}'
    assert accepts(compiler, c, answer)
    assert accepts(compiler, c, "<think>\nIt is hot {in} Rome.\n</think>\n\n" + answer)
    assert not accepts(compiler, c, "<think>\nno end " + answer)
    # the template opened the trace: the output must close it first
    assert accepts(compiler, c, "Hot.\n</think>\n\n" + answer, prompt="<|im_start|>assistant\n<think>\n")
    assert not accepts(compiler, c, answer, prompt="<|im_start|>assistant\n<think>\n")


def test_required_tool_calls(compiler: GrammarCompiler) -> None:
    c = OutputConstraint(tools=(WEATHER, NOOP), require_tool_call=True, tool_call_format="hermes")
    one = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    two = one + '\n<tool_call>\n{"name": "noop", "arguments": {}}\n</tool_call>'
    assert accepts(compiler, c, one) and accepts(compiler, c, two)
    assert not accepts(compiler, c, "I will not call anything.")
    assert not accepts(compiler, c, one.replace("Paris", "Berlin"))  # the parameters' schema holds
    assert not accepts(compiler, c, one.replace("get_weather", "launch_rocket"))
    single = OutputConstraint(
        tools=(WEATHER, NOOP), require_tool_call=True, tool_call_format="hermes", parallel_tool_calls=False
    )
    assert accepts(compiler, single, one) and not accepts(compiler, single, two)


def test_json_or_tool_call_with_tool_choice_auto(compiler: GrammarCompiler) -> None:
    c = OutputConstraint(json_schema=SCHEMA, tools=(NOOP,), tool_call_format="hermes")
    assert accepts(compiler, c, '{"city": "Oslo", "temp": -3}')
    assert accepts(compiler, c, '<tool_call>\n{"name": "noop", "arguments": {}}\n</tool_call>')


@pytest.mark.parametrize(
    "schema,fragment",
    [
        ({"type": "string", "format": "no-such-format"}, "Unknown format"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "does not exist"),
    ],
)
def test_unenforceable_schema_is_a_400_naming_the_field(
    compiler: GrammarCompiler, schema: dict[str, Any], fragment: str
) -> None:
    c = OutputConstraint(json_schema=schema, param="response_format")
    with pytest.raises(InvalidRequestError) as e:
        compiler.processor(c, None, 0)
    assert e.value.param == "response_format" and fragment in e.value.message
    assert "\n" not in e.value.message and "%llguidance" not in e.value.message


def test_non_strict_ignores_unknown_keywords(compiler: GrammarCompiler) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "x-custom-keyword": 1, "examples": [{}]}
    compiler.processor(OutputConstraint(json_schema=schema, strict=False), None, 0)
