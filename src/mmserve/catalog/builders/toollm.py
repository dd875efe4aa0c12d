"""Tiny Qwen3-style chat LM for reasoning and tool calling (seeded random weights): ``demo:tool-lm``.

Its tokenizer and chat template follow Qwen3's conventions: ChatML turns, ``<think>`` /
``</think>`` and ``<tool_call>`` / ``</tool_call>`` as added (non-special) tokens, the tool
list in the system turn, tool results as ``<tool_response>`` blocks in a user turn, and
``enable_thinking=false`` closing an empty ``<think>`` block in the generation prompt.
Random weights cannot reason or call tools by themselves: tests script its output with a
logits processor (``options.logits_processors``) or constrain it with ``tool_choice`` /
``response_format``, and the parsers then run for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmserve.catalog.builders.tokenizer import CHAT_SPECIALS, SENTENCES, train_bpe_tokenizer
from mmserve.catalog.builders.vlm import _text_config

TAG_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
TOOL_SENTENCES = [
    'What is the weather in Paris? {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
    "The user wants the weather. I should call the tool and then answer with the temperature.",
    "It is 21 degrees and sunny in Paris today.",
]

TOOL_CHAT_TEMPLATE = """\
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}
{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n' }}
{{- 'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments ' }}
{{- 'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n' }}
{{- '{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role in ['user', 'system'] %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant\\n' }}
{%- if message.reasoning_content %}{{- '<think>\\n' + message.reasoning_content + '\\n</think>\\n\\n' }}{%- endif %}
{%- if message.content %}{{- message.content }}{%- endif %}
{%- for call in message.tool_calls or [] %}
{%- if message.content or not loop.first %}{{- '\\n' }}{%- endif %}
{{- '<tool_call>\\n{"name": "' + call.function.name + '", "arguments": ' }}
{%- if call.function.arguments is string %}{{- call.function.arguments }}
{%- else %}{{- call.function.arguments | tojson }}{%- endif %}
{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\\n' }}
{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}
{%- endif %}
"""


def tool_tokenizer() -> Any:
    from tokenizers import AddedToken

    tok = train_bpe_tokenizer(
        specials=[*CHAT_SPECIALS, "<|im_start|>", "<|im_end|>"], sentences=SENTENCES + TOOL_SENTENCES
    )
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    tok.eos_token = "<|im_end|>"
    tok.chat_template = TOOL_CHAT_TEMPLATE
    return tok


def build_tiny_tool_lm(out: Path, *, seed: int = 0, head_dim: int | None = None) -> None:
    import torch
    from transformers import LlamaForCausalLM

    tok = tool_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_text_config(tok, head_dim=head_dim)).eval()
    # Random weights may pick raw bytes: keep them to printable text (and newlines, which tool calls need).
    specials = set(tok.all_special_ids)
    model.generation_config.suppress_tokens = [
        i
        for i in range(len(tok))
        if i not in specials
        and not all(c == "\n" or (c.isascii() and c.isprintable()) for c in tok.decode([i]) or "\x00")
    ]
    model.save_pretrained(out)
    tok.save_pretrained(out)


def build_tiny_tool_lm_hd32(out: Path) -> None:
    """``demo:tool-lm-hd32``: the same model with 32-wide attention heads, which vLLM's CPU attention
    needs (it supports head sizes 32, 64, 80... but not the 16 of ``demo:tool-lm``)."""
    build_tiny_tool_lm(out, head_dim=32)
