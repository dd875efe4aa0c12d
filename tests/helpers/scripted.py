"""Script what the tiny tool LM says, through the engine's documented ``options.logits_processors`` hook.

Random weights cannot reason or call tools, so this processor plays a Qwen3-style model:
it reads the rendered prompt (as a model would) and boosts, token by token, the reply a
real model would give, in the model's own output format. Everything after the logits
(constrained decoding, sampling, detokenizing, parsing, the HTTP shapes) is the real
server. It boosts rather than forces, so a grammar still wins where the two disagree.

Replies depend on the prompt:
- thinking switched off by the template (the prompt ends with an empty ``<think></think>``):
  no trace, as Qwen3 does;
- the last user turn is tool results: an answer that quotes them;
- otherwise the first script whose trigger is in the last user message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BOOST = 1000.0


@dataclass(frozen=True)
class Script:
    trigger: str
    answer: str
    think: str | None = None


WEATHER_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>'
ROME_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome", "unit": "celsius"}}\n</tool_call>'
LONG_THOUGHT = "Let me think about this very carefully, step by step, considering every detail. " * 6

SCRIPTS = [
    Script("Paris and Rome", WEATHER_CALL + "\n" + ROME_CALL, think="Two cities: I will call get_weather twice."),
    Script("weather in Paris", WEATHER_CALL, think="The user wants the weather in Paris. I should call get_weather."),
    Script(
        "broken call",
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par\n</tool_call>',
    ),
    Script("launch a rocket", '<tool_call>\n{"name": "launch_rocket", "arguments": {}}\n</tool_call>'),
    Script("Think at length", "Done.", think=LONG_THOUGHT),
    Script("Say hello", "Hello! How can I help you today?", think="The user greets me. I should greet them back."),
    Script("as JSON", '{"city": "Paris", "temperature": 21}', think="They want JSON with the city and temperature."),
]
DEFAULT = Script("", "I am a tiny test model.")


def reply_for(prompt: str) -> str:
    """The text the scripted model answers to a rendered prompt."""
    thinking_off = prompt.rstrip().endswith("</think>")
    last_user = prompt.rsplit("<|im_start|>user", 1)[-1].split("<|im_end|>", 1)[0]
    if "<tool_response>" in last_user:
        results = [part.split("</tool_response>", 1)[0].strip() for part in last_user.split("<tool_response>")[1:]]
        return "The tool says: " + "; ".join(results)
    script = next((s for s in SCRIPTS if s.trigger in last_user), DEFAULT)
    if script.think and not thinking_off:
        return f"<think>\n{script.think}\n</think>\n\n{script.answer}"
    return script.answer


class ScriptedReplies:
    """``factory(tokenizer, prompt_ids)`` of the engine hook: one instance per request."""

    def __init__(self, tokenizer: Any, prompt_ids: list[int]) -> None:
        self.prompt_len = len(prompt_ids)
        reply = reply_for(tokenizer.decode(prompt_ids, skip_special_tokens=False))
        self.ids = [*tokenizer.encode(reply, add_special_tokens=False), tokenizer.eos_token_id]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        step = min(input_ids.shape[1] - self.prompt_len, len(self.ids) - 1)
        boosted = scores.clone()
        boosted[:, self.ids[step]] += BOOST
        return boosted
