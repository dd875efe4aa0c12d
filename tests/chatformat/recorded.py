"""Outputs as real models write them (Qwen3, QwQ, DeepSeek-R1, Hermes 2 Pro / 3, Qwen2.5), for the parsers."""

from __future__ import annotations

# Qwen3-8B, thinking on (the template leaves the block to the model).
QWEN3_THINKING = (
    "<think>\nOkay, the user is asking about the weather in Paris. I should use the get_weather function "
    "with location set to Paris. The unit wasn't specified, so I'll default to celsius.\n</think>\n\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}}\n'
    "</tool_call>"
)
# Qwen3 with "/no_think" in the prompt: an empty block, then the answer.
QWEN3_NO_THINK = "<think>\n\n</think>\n\nThe capital of France is Paris."
# Qwen3, thinking, plain answer with markdown and a stray "<think>" mention in the answer.
QWEN3_ANSWER = (
    "<think>\nThe user wants a haiku. 5-7-5 syllables.\n\nLet me draft one.\n</think>\n\n"
    "Autumn moonlight—\na worm digs silently\ninto the chestnut.\n\n(Models write <think> tags to reason.)"
)
# DeepSeek-R1: its template ends the prompt with "<\uff5cAssistant\uff5c><think>\n" (fullwidth bars), so the
# output starts inside the trace.
R1_PROMPT = (
    "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Which is larger, 9.11 or 9.9?"
    "<\uff5cAssistant\uff5c><think>\n"
)
R1_OUTPUT = (
    "Okay, so I need to figure out whether 9.11 is larger than 9.9. Hmm, comparing decimals: 9.9 is "
    "9.90, and 9.90 > 9.11.\n</think>\n\n**9.9 is larger than 9.11.**"
)
# DeepSeek-R1-Distill-Qwen with the older template: the model opens the block itself.
R1_DISTILL = "<think>\nFirst, 2 + 2 = 4.\n</think>\n\nThe answer is **4**."
# QwQ-32B cut off by max_tokens while thinking (its template opens the block).
QWQ_PROMPT = "<|im_start|>user\nHow many r's are in strawberry?<|im_end|>\n<|im_start|>assistant\n<think>\n"
QWQ_CUT = "Okay, let's see. The word is strawberry. S-T-R-A-W-B-E-R-R-Y. So the r's are at positions 3, 8"

# Hermes 2 Pro (Mistral 7B): a Python dict literal, arguments before name.
HERMES2_PRO = "<tool_call>\n{'arguments': {'symbol': 'TSLA'}, 'name': 'get_stock_fundamentals'}\n</tool_call>"
# Hermes 3 (Llama 3.1): JSON, arguments first.
HERMES3 = '<tool_call>\n{"arguments": {"symbol": "AAPL"}, "name": "get_stock_price"}\n</tool_call>'
# Qwen2.5-7B-Instruct: parallel calls, one per block.
QWEN25_PARALLEL = (
    '<tool_call>\n{"name": "get_current_temperature", "arguments": {"location": "San Francisco, CA, USA"}}\n'
    '</tool_call>\n<tool_call>\n{"name": "get_temperature_date", "arguments": {"location": '
    '"San Francisco, CA, USA", "date": "2024-10-01"}}\n</tool_call>'
)
# Qwen3: some words, then a call.
QWEN3_TEXT_THEN_CALL = (
    "I'll look up the current weather in Tokyo for you.\n\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>'
)
# A call whose JSON the model never finished (max_tokens inside the call).
TRUNCATED_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tok'
