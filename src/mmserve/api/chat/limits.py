"""How much text a chat request may carry, checked before any tokenizer runs.

Tokenising is the first costly thing done with a prompt (a 10 MB one took 10-26 s of CPU
and held its model meanwhile), so the text is measured first: characters and UTF-8 bytes
of every message and of the whole request (messages and tool definitions). The bounds:

- characters: the card's ``limits.max_input_chars`` and the server's
  ``MMSERVE_LIMITS__MAX_CHAT_CHARS``;
- bytes: the server's ``MMSERVE_LIMITS__MAX_CHAT_BYTES`` and, for a card that declares its
  context, ``BYTES_PER_TOKEN`` bytes per token of it: a longer text cannot fit, whatever the
  tokenizer (tokens are rarely longer than a few bytes; 16 leaves room for runs of spaces
  and CJK text).

Past a bound: a 400 ``context_length_exceeded`` naming the limit and where it comes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mmserve.api.chat.protocol import ChatCompletionRequest, Message, TextPart
from mmserve.cards import ModelCard
from mmserve.errors import ContextLengthError
from mmserve.settings import LimitSettings

BYTES_PER_TOKEN = 16


@dataclass
class _Bound:
    limit: int
    unit: str  # "characters" | "UTF-8 bytes"
    source: str  # where the limit comes from, for the message


def check_text_size(req: ChatCompletionRequest, card: ModelCard, limits: LimitSettings) -> None:
    chars = _Bound(limits.max_chat_chars, "characters", "the server's MMSERVE_LIMITS__MAX_CHAT_CHARS")
    if card.limits.max_input_chars is not None and card.limits.max_input_chars < chars.limit:
        chars = _Bound(card.limits.max_input_chars, "characters", "its card's limits.max_input_chars")
    size = _Bound(limits.max_chat_bytes, "UTF-8 bytes", "the server's MMSERVE_LIMITS__MAX_CHAT_BYTES")
    context = card.capabilities.context_length
    if context and context * BYTES_PER_TOKEN < size.limit:
        size = _Bound(
            context * BYTES_PER_TOKEN, "UTF-8 bytes", f"{BYTES_PER_TOKEN} per token of its {context}-token context"
        )
    texts = [(f"messages[{i}].content", _message_text(m)) for i, m in enumerate(req.messages)]
    tools = json.dumps(req.tools, ensure_ascii=False) if req.tools else ""
    total_chars = 0
    for param, text in texts:
        _check(len(text), chars, f"'{param}'", param, card)
        total_chars += len(text)
    _check(len(tools), chars, "'tools'", "tools", card)
    _check(total_chars + len(tools), chars, "the request", "messages", card)
    # within the character bound, encoding costs little (at most 4 bytes per character)
    total_bytes = 0
    for param, text in texts:
        n = len(text.encode("utf-8", errors="surrogatepass"))
        _check(n, size, f"'{param}'", param, card)
        total_bytes += n
    tool_bytes = len(tools.encode("utf-8", errors="surrogatepass"))
    _check(tool_bytes, size, "'tools'", "tools", card)
    _check(total_bytes + tool_bytes, size, "the request", "messages", card)


def _check(n: int, bound: _Bound, what: str, param: str, card: ModelCard) -> None:
    if n > bound.limit:
        raise ContextLengthError(
            f"The text of {what} is {n} {bound.unit}; the model '{card.id}' accepts at most {bound.limit} "
            f"{bound.unit} of text per request ({bound.source}). Shorten the messages.",
            param=param,
        )


def _message_text(m: Message) -> str:
    """Everything of a message that its chat template renders as text."""
    parts: list[str] = []
    if isinstance(m.content, str):
        parts.append(m.content)
    elif m.content is not None:
        parts += [p.text for p in m.content if isinstance(p, TextPart)]
    for extra in (m.name, m.reasoning_content, m.tool_call_id):
        if extra:
            parts.append(extra)
    for call in m.tool_calls or []:
        parts += [call.function.name, call.function.arguments]
    return "".join(parts)
