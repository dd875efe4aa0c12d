"""Chat on a third-party OpenAI-compatible provider, so remote models share the catalog,
routing and metering with local ones.

The card names the provider (``options.base_url``), the remote model (``options.model``,
default: the card id) and the environment variable holding the key
(``options.api_key_env``); the shared client (:mod:`.client`) pools, limits and retries.
Images, already fetched and bounded by the media layer, are sent as PNG data URIs. A request
whose client streams streams from the provider too and is re-emitted as engine deltas, with the
provider's token usage; one whose client waits for the whole answer (``ChatInput.streamed``
False) asks the provider for a whole answer, as the client asked mmserve. Streaming it instead
cost both sides: measured (benchmarks/gateway.py, concurrency 1, an 8-token answer), mmserve
spent 0.88 ms of CPU per request instead of 0.72, and added 1.00 ms p50 / 2.10 ms p99 over
calling the provider directly instead of 0.77 / 1.53 ms, the provider streaming a dozen events
and mmserve parsing each. A whole answer must come within ``timeout_s`` (the wait for the
provider's next bytes, which is here the whole generation); a client that leaves before it
leaves nothing metered, as nothing was answered. Tool calls, streamed or whole, are written in
the card's ``capabilities.tool_call_format`` (which a card must set to take tools), so the chat
service reads them back like a local model's.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncGenerator
from typing import Any

import pybase64

from mmserve.chatformat.tools import TOOL_PARSERS
from mmserve.engines.base import ChatEngine
from mmserve.engines.common.openai_body import sampling_fields
from mmserve.engines.types import ChatDelta, ChatInput, ChatMessage
from mmserve.engines.upstream.base import UpstreamEngine
from mmserve.errors import MMServeError


class UpstreamChatEngine(UpstreamEngine, ChatEngine):
    async def generate(self, request: ChatInput) -> AsyncGenerator[ChatDelta, None]:
        upstream = self.upstream
        has_images = any(m.images for m in request.messages)
        # images are re-encoded (PNG): not on the loop; text-only bodies are too cheap for a thread hop
        body = await asyncio.to_thread(self._body, request) if has_images else self._body(request)
        if not request.streamed:
            for piece in self._whole(await upstream.request_json("POST", "/chat/completions", json=body)):
                yield piece
            return
        body["stream"], body["stream_options"] = True, {"include_usage": True}
        async with upstream.stream("POST", "/chat/completions", json=body) as resp:
            prompt_tokens: int | None = None
            completion = 0
            finish: str | None = None
            first = True
            calls: dict[int, list[str]] = {}  # tool calls by index: [name, arguments], streamed in pieces
            try:
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        # read on to the end of the body rather than break: a response left
                        # half-read cannot go back to the connection pool (a new TCP connect each time)
                        continue
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise upstream.bad_response(f"an error in its stream: {upstream.clip(str(chunk['error']))}")
                    usage = chunk.get("usage")
                    if usage:
                        prompt_tokens = usage.get("prompt_tokens", prompt_tokens)
                        completion = usage.get("completion_tokens", completion)
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        text = delta.get("content") or ""
                        for call in delta.get("tool_calls") or []:
                            name_args = calls.setdefault(call.get("index", len(calls)), ["", ""])
                            function = call.get("function") or {}
                            name_args[0] += function.get("name") or ""
                            name_args[1] += function.get("arguments") or ""
                        finish = choice.get("finish_reason") or finish
                        if first:
                            first = False
                            yield ChatDelta(prompt_tokens=prompt_tokens)
                        if text:
                            yield ChatDelta(text=text, completion_tokens=completion)
            except MMServeError:
                raise
            except (ValueError, KeyError, TypeError, AttributeError) as e:  # not the JSON objects OpenAI streams
                raise upstream.bad_response("an unreadable stream") from e
            except Exception as e:  # the connection dropped or stalled past timeout_s mid-stream
                raise upstream.mid_stream_error(e) from e
            if first:
                yield ChatDelta(prompt_tokens=prompt_tokens)
            if calls:
                yield ChatDelta(text=self._calls_text(calls), completion_tokens=completion)
            yield ChatDelta(finish_reason=finish or "stop", completion_tokens=completion, prompt_tokens=prompt_tokens)

    def _whole(self, answer: dict[str, Any]) -> list[ChatDelta]:
        """A whole (unstreamed) answer as the deltas a stream of it would end with."""
        try:
            usage = answer.get("usage") or {}
            prompt_tokens, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 0)
            choice = answer["choices"][0]
            message = choice.get("message") or {}
            text = message.get("content") or ""
            functions = [call.get("function") or {} for call in message.get("tool_calls") or []]
            calls = {i: [f.get("name") or "", f.get("arguments") or ""] for i, f in enumerate(functions)}
            finish = choice.get("finish_reason") or "stop"
            if not isinstance(text, str) or not isinstance(completion, int):
                raise TypeError(type(text))
        except (KeyError, IndexError, TypeError, AttributeError) as e:  # not the object OpenAI answers
            raise self.upstream.bad_response("an answer without a chat completion's choices") from e
        deltas = [ChatDelta(prompt_tokens=prompt_tokens)]
        if text:
            deltas.append(ChatDelta(text=text, completion_tokens=completion))
        if calls:  # after the text, as the stream sends them
            deltas.append(ChatDelta(text=self._calls_text(calls), completion_tokens=completion))
        deltas.append(ChatDelta(finish_reason=finish, completion_tokens=completion, prompt_tokens=prompt_tokens))
        return deltas

    def _calls_text(self, calls: dict[int, list[str]]) -> str:
        """The provider's tool calls written in the card's format, for the chat service's parser to read back."""
        fmt = TOOL_PARSERS[self.card.capabilities.tool_call_format or "hermes"]
        return "\n".join(fmt.render(name, arguments) for _, (name, arguments) in sorted(calls.items()))

    def _body(self, request: ChatInput) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": self.remote_model,
            "messages": [_message(m) for m in request.messages],
            **sampling_fields(p),
        }
        if p.max_tokens is not None:
            body["max_tokens"] = p.max_tokens
        if request.tools:
            body["tools"] = request.tools
            if isinstance(request.tool_choice, str) and request.tool_choice.startswith("function:"):
                name = request.tool_choice.removeprefix("function:")
                body["tool_choice"] = {"type": "function", "function": {"name": name}}
            elif request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
        if request.response_format:
            body["response_format"] = request.response_format
        return body


def _message(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, str):
        out["content"] = m.content
    else:
        parts: list[dict[str, Any]] = []
        for p in m.content:
            if p.type == "image" and p.image is not None:
                buf = io.BytesIO()
                p.image.save(buf, "PNG")
                url = "data:image/png;base64," + pybase64.b64encode(buf.getvalue()).decode()
                parts.append({"type": "image_url", "image_url": {"url": url}})
            else:
                parts.append({"type": "text", "text": p.text})
        out["content"] = parts
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = m.tool_calls
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out
