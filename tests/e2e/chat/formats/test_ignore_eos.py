"""ignore_eos (vLLM's extension) on the scripted model, whose answers end with its end-of-sequence token."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

HELLO = [{"role": "user", "content": "Say hello /no_think"}]


def test_ignore_eos_generates_up_to_max_tokens(client: OpenAI) -> None:
    ended = client.chat.completions.create(model="tool-lm", messages=HELLO, max_tokens=60, reasoning_effort="none")
    assert ended.choices[0].finish_reason == "stop"
    assert ended.usage is not None and ended.usage.completion_tokens < 60
    r = client.chat.completions.create(
        model="tool-lm", messages=HELLO, max_tokens=60, reasoning_effort="none", extra_body={"ignore_eos": True}
    )
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 60
    # what follows the end-of-sequence token is more end-of-sequence tokens (the script's), not text
    assert r.choices[0].message.content == ended.choices[0].message.content


def test_ignore_eos_with_an_enforced_format_is_refused(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="tool-lm",
            messages=HELLO,
            response_format={"type": "json_object"},
            extra_body={"ignore_eos": True},
        )
    assert e.value.body["param"] == "ignore_eos"  # type: ignore[index]
