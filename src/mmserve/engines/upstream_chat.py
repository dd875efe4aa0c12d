"""Chat on a third-party OpenAI-compatible provider, so remote models share the catalog,
routing and metering with local ones.

The card names the provider (``options.base_url``), the remote model (``options.model``,
default: the card id) and the environment variable holding the key
(``options.api_key_env``). Images, already fetched and bounded by the media layer, are sent
as data URIs. Requests stream from the provider and are re-emitted as engine deltas; tool
calls it streams are written in the card's ``capabilities.tool_call_format`` (which a card
must set to take tools), so the chat service reads them back like a local model's.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from pydantic import Field

from mmserve.chatformat.tools import TOOL_PARSERS
from mmserve.engines.base import ChatEngine, EngineOptions
from mmserve.engines.types import ChatDelta, ChatInput, ChatMessage
from mmserve.errors import EngineError, EngineUnavailableError, InvalidRequestError

log = logging.getLogger("mmserve.engines.upstream")


class UpstreamOptions(EngineOptions):
    base_url: str = Field(description="e.g. https://api.provider.com/v1")
    model: str | None = Field(default=None, description="The provider's model name; default: the card id.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the API key.")
    timeout_s: float = Field(default=120.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    max_connections: int = Field(default=100, ge=1)


class UpstreamChatEngine(ChatEngine):
    Options = UpstreamOptions
    options: UpstreamOptions
    client: httpx.AsyncClient | None = None
    transport: httpx.AsyncBaseTransport | None = None  # tests may inject one

    def load(self) -> None:
        opts = self.options
        headers = {"User-Agent": "mmserve", **opts.headers}
        if opts.api_key_env:
            key = os.environ.get(opts.api_key_env)
            if not key:
                raise EngineUnavailableError(
                    f"Model '{self.card.id}': the environment variable {opts.api_key_env} (its API key) is not set."
                )
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.AsyncClient(
            base_url=opts.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(opts.timeout_s, connect=opts.connect_timeout_s),
            limits=httpx.Limits(max_connections=opts.max_connections),
            transport=self.transport,
            trust_env=False,
        )

    async def aclose(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def generate(self, request: ChatInput) -> AsyncGenerator[ChatDelta, None]:
        if self.client is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        has_images = any(m.images for m in request.messages)
        # images are re-encoded (PNG): not on the loop; text-only bodies are too cheap for a thread hop
        body = await asyncio.to_thread(self._body, request) if has_images else self._body(request)
        try:
            async with self.client.stream("POST", "/chat/completions", json=body) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    raise self._provider_error(resp)
                prompt_tokens: int | None = None
                completion = 0
                finish: str | None = None
                first = True
                calls: dict[int, list[str]] = {}  # tool calls by index: [name, arguments], streamed in pieces
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
                        raise EngineError(f"provider error in '{self.card.id}': {chunk['error']}")
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
                if first:
                    yield ChatDelta(prompt_tokens=prompt_tokens)
                if calls:
                    yield ChatDelta(text=self._calls_text(calls), completion_tokens=completion)
                yield ChatDelta(
                    finish_reason=finish or "stop", completion_tokens=completion, prompt_tokens=prompt_tokens
                )
        except httpx.HTTPError as e:
            raise EngineUnavailableError(f"The provider of '{self.card.id}' could not be reached.") from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # not the JSON objects OpenAI streams
            raise EngineError(f"The provider of '{self.card.id}' sent an unreadable stream.") from e

    def _calls_text(self, calls: dict[int, list[str]]) -> str:
        """The provider's tool calls written in the card's format, for the chat service's parser to read back."""
        fmt = TOOL_PARSERS[self.card.capabilities.tool_call_format or "hermes"]
        return "\n".join(fmt.render(name, arguments) for _, (name, arguments) in sorted(calls.items()))

    def _provider_error(self, resp: httpx.Response) -> Exception:
        if 400 <= resp.status_code < 500 and resp.status_code not in (401, 403, 408, 429):
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = "The provider refused the request."
            return InvalidRequestError(f"The provider of '{self.card.id}' refused the request: {message}")
        return EngineUnavailableError(
            f"The provider of '{self.card.id}' answered HTTP {resp.status_code}.", code="upstream_error"
        )

    def _body(self, request: ChatInput) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": self.options.model or self.card.id,
            "messages": [_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": p.temperature,
            "top_p": p.top_p,
        }
        if p.max_tokens is not None:
            body["max_tokens"] = p.max_tokens
        if p.stop:
            body["stop"] = p.stop
        if p.seed is not None:
            body["seed"] = p.seed
        if p.presence_penalty:
            body["presence_penalty"] = p.presence_penalty
        if p.frequency_penalty:
            body["frequency_penalty"] = p.frequency_penalty
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
                url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
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
