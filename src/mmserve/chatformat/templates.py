"""Messages as Hugging Face chat templates expect them (shared by engines that render templates)."""

from __future__ import annotations

import json
from typing import Any


def template_tool_calls(tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls with ``function.arguments`` decoded from its JSON string.

    OpenAI sends arguments as a JSON string; chat templates (Qwen2.5, Hermes, Llama 3.1,
    Mistral) write them with ``| tojson``, which would encode the string a second time.
    vLLM decodes them the same way. Arguments that are not a JSON object stay a string.
    """
    out = []
    for call in tool_calls:
        function = dict(call.get("function") or {})
        args = function.get("arguments")
        if isinstance(args, str):
            try:
                decoded = json.loads(args) if args.strip() else {}
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                function["arguments"] = decoded
        out.append({**call, "function": function})
    return out
