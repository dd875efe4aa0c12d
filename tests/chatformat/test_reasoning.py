"""The <think> parser on recorded outputs, whole and split at every possible chunk boundary."""

from __future__ import annotations

import pytest

from mmserve.chatformat.reasoning import ThinkTagsParser, reasoning_parser
from tests.chatformat import recorded


def parse(text: str, *, prompt: str | None = None, step: int | None = None) -> tuple[str, str, ThinkTagsParser]:
    parser = reasoning_parser("think-tags", prompt=prompt)
    chunks = [text] if step is None else [text[i : i + step] for i in range(0, len(text), step)]
    pieces = [p for c in chunks for p in parser.feed(c)] + parser.finish()
    reasoning = "".join(p.text for p in pieces if p.channel == "reasoning")
    content = "".join(p.text for p in pieces if p.channel == "content")
    return reasoning, content, parser


def test_qwen3_trace_and_answer() -> None:
    reasoning, content, parser = parse(recorded.QWEN3_ANSWER)
    assert reasoning == "The user wants a haiku. 5-7-5 syllables.\n\nLet me draft one."
    assert content.startswith("Autumn moonlight") and content.endswith("(Models write <think> tags to reason.)")
    assert parser.closed and parser.saw_reasoning


def test_qwen3_no_think_has_empty_trace() -> None:
    reasoning, content, _ = parse(recorded.QWEN3_NO_THINK)
    assert reasoning == ""
    assert content == "The capital of France is Paris."


def test_deepseek_r1_template_opens_the_trace() -> None:
    reasoning, content, _ = parse(recorded.R1_OUTPUT, prompt=recorded.R1_PROMPT)
    assert reasoning.startswith("Okay, so I need") and reasoning.endswith("9.90 > 9.11.")
    assert content == "**9.9 is larger than 9.11.**"
    # Without the prompt's open tag the same text is plain content (no guessing).
    reasoning, content, _ = parse(recorded.R1_OUTPUT)
    assert reasoning == "" and content == recorded.R1_OUTPUT


def test_distill_opens_its_own_trace() -> None:
    assert parse(recorded.R1_DISTILL)[:2] == ("First, 2 + 2 = 4.", "The answer is **4**.")


def test_cut_off_while_thinking_is_all_reasoning() -> None:
    reasoning, content, parser = parse(recorded.QWQ_CUT, prompt=recorded.QWQ_PROMPT)
    assert reasoning == recorded.QWQ_CUT and content == ""
    assert parser.saw_reasoning and not parser.closed


def test_no_trace_passes_through() -> None:
    reasoning, content, parser = parse("Hello there.\n")
    assert (reasoning, content, parser.saw_reasoning) == ("", "Hello there.\n", False)
    # a lone "<" or a prefix of the tag at the start is content once it is decided
    assert parse("<b>bold</b>")[:2] == ("", "<b>bold</b>")
    assert parse("<thi")[:2] == ("", "<thi")


@pytest.mark.parametrize(
    "text,prompt",
    [
        (recorded.QWEN3_THINKING, None),
        (recorded.QWEN3_NO_THINK, None),
        (recorded.QWEN3_ANSWER, None),
        (recorded.R1_OUTPUT, recorded.R1_PROMPT),
        (recorded.R1_DISTILL, None),
        (recorded.QWQ_CUT, recorded.QWQ_PROMPT),
    ],
)
@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 13])
def test_any_chunking_gives_the_same_split(text: str, prompt: str | None, step: int) -> None:
    whole = parse(text, prompt=prompt)[:2]
    assert parse(text, prompt=prompt, step=step)[:2] == whole


def test_streaming_never_emits_part_of_a_tag() -> None:
    parser = reasoning_parser("think-tags")
    seen: list[str] = []
    for ch in recorded.QWEN3_ANSWER:
        seen += [p.text for p in parser.feed(ch)]
    seen += [p.text for p in parser.finish()]
    assert not any(t in s for s in seen for t in ("<thi", "</th", "nk>"))


def test_opens_in_prompt() -> None:
    assert ThinkTagsParser.opens_in_prompt("...<|im_start|>assistant\n<think>\n")
    assert not ThinkTagsParser.opens_in_prompt("...<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not ThinkTagsParser.opens_in_prompt(None)
