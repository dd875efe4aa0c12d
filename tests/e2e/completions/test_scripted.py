"""Legacy completions on the scripted Qwen3-style model (tests/helpers/scripted.py): a hand-written chat prompt."""

from __future__ import annotations

from openai import OpenAI

from tests.helpers.scripted import SCRIPTS
from tests.helpers.server import LiveServer

HELLO = next(s for s in SCRIPTS if s.trigger == "Say hello")
# Qwen3's template for one user turn with thinking switched off, written by hand
PROMPT = "<|im_start|>user\nSay hello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_a_hand_written_template_and_ignore_eos(formats_server: LiveServer) -> None:
    client = OpenAI(base_url=formats_server.url + "/v1", api_key="unused", max_retries=0)
    ended = client.completions.create(model="tool-lm", prompt=PROMPT, max_tokens=60)
    assert ended.choices[0].text == HELLO.answer and ended.choices[0].finish_reason == "stop"
    assert ended.usage is not None and ended.usage.completion_tokens < 60
    r = client.completions.create(model="tool-lm", prompt=PROMPT, max_tokens=60, extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length" and r.usage is not None and r.usage.completion_tokens == 60
