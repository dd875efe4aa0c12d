"""Model output formats: reasoning traces, tool calls and the grammars that constrain them.

Reasoning and tool-call markup is specific to a model family but independent of the
engine that runs it, so it lives here and not in an engine: the chat service applies the
parsers to any engine's stream of text deltas (transformers today, vLLM or an upstream
provider later), and engines that constrain decoding build their grammar here.

    reasoning.py  <think>...</think> traces -> reasoning_content     (card: reasoning_format)
    tools.py      <tool_call>{json}</tool_call> -> tool_calls         (card: tool_call_format)
    output.py     both, per choice, with ids and reasoning-token counts
    grammar.py    response_format / tool_choice -> an llguidance Lark grammar
    templates.py  messages as Hugging Face chat templates expect them

Nothing here imports a model library.
"""
