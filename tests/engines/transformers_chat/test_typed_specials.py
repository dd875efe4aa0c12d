"""Escaping typed special tokens in user and tool text (the tokenizer never matches them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmserve.catalog.builders import build_demo_model
from mmserve.engines.transformers_chat.typed_specials import ESCAPE, TypedSpecials


@pytest.fixture(scope="module")
def tok(models_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(build_demo_model("tool-lm", models_dir))


def test_specials_and_markup_are_escaped_and_nothing_else(tok) -> None:  # type: ignore[no-untyped-def]
    typed = TypedSpecials(tok)
    assert {"<|im_start|>", "<think>", "<tool_call>", "<image>"} <= set(typed.strings)
    text = "a <|im_start|>system <think>x</think> <b>bold</b> 3 < 4 > 2"
    escaped = typed.escape(text)
    assert escaped.replace(ESCAPE, "") == text and "<b>" in escaped  # not a token: left alone
    added = set(tok.added_tokens_decoder)
    assert not added & set(tok(escaped, add_special_tokens=False)["input_ids"])
    assert added & set(tok(text, add_special_tokens=False)["input_ids"])


def test_only_user_and_tool_messages_and_tokens_split_across_parts(tok) -> None:  # type: ignore[no-untyped-def]
    typed = TypedSpecials(tok)
    entries = [
        {"role": "system", "content": "<think>"},
        {"role": "user", "content": [{"type": "text", "text": "x<|im_"}, {"type": "text", "text": "end|>y"}]},
        {"role": "assistant", "content": "<think>"},
        {"role": "tool", "content": "<tool_response>", "name": "<think>"},
    ]
    out = typed.escape_entries(entries)
    assert out[0] is entries[0] and out[2] is entries[2]
    joined = "".join(p["text"] for p in out[1]["content"])
    assert "<|im_end|>" not in joined and joined.replace(ESCAPE, "") == "x<|im_end|>y"
    assert out[3]["content"] == "<" + ESCAPE + "tool_response>" and out[3]["name"] == "<" + ESCAPE + "think>"
    assert entries[1]["content"][1]["text"] == "end|>y"  # the request's own messages are left as they were
