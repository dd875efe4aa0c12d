"""A fake third-party OpenAI-compatible provider on loopback (simulates something outside mmserve).

It answers chat completions by echoing the last user text word by word, counts requests,
checks the bearer key, and can be told to fail with a status code. Given tools (and a
tool_choice other than "none"), it streams one call, as OpenAI does: the name first, then the
arguments in fragments: ``{"text": <the last user text>}`` to the named (else the first) tool.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.helpers.server import LiveServer


class FakeProvider:
    def __init__(self, key: str = "sk-upstream", fail_status: int | None = None) -> None:
        self.key = key
        self.fail_status = fail_status
        self.requests: list[dict[str, Any]] = []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await request.json()
            self.requests.append(body)
            if request.headers.get("authorization") != f"Bearer {self.key}":
                return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, status_code=401)
            if self.fail_status:
                return JSONResponse(
                    {"error": {"message": "provider down", "type": "server"}}, status_code=self.fail_status
                )
            call = _tool_call(body)
            if call is not None:
                return StreamingResponse(_tool_call_events(body, call), media_type="text/event-stream")
            words = _last_text(body).split() or ["ok"]
            words = words[: body.get("max_tokens") or len(words)]
            prompt = sum(len(_text(m).split()) for m in body["messages"])
            usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}
            if not body.get("stream"):
                return {
                    "id": "fake-1",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "usage": usage,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": " ".join(words)},
                        }
                    ],
                }

            def events() -> Any:
                base = {"id": "fake-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
                yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
                for i, w in enumerate(words):
                    yield _sse({**base, "choices": [{"index": 0, "delta": {"content": (" " if i else "") + w}}]})
                yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                yield _sse({**base, "choices": [], "usage": usage})
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        self.server = LiveServer(app)

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def __enter__(self) -> FakeProvider:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def _text(m: dict[str, Any]) -> str:
    c = m.get("content") or ""
    return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if p.get("type") == "text")


def _last_text(body: dict[str, Any]) -> str:
    users = [m for m in body["messages"] if m["role"] == "user"]
    return _text(users[-1]) if users else ""


def _tool_call(body: dict[str, Any]) -> str | None:
    """The function the fake calls, or None (no tools, or tool_choice "none")."""
    tools, choice = body.get("tools") or [], body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        return str(choice["function"]["name"])
    return str(tools[0]["function"]["name"])


def _tool_call_events(body: dict[str, Any], name: str) -> Any:
    base = {"id": "fake-2", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
    args = json.dumps({"text": _last_text(body)})
    head = {"index": 0, "id": "call_fake", "type": "function", "function": {"name": name, "arguments": ""}}
    yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [head]}}]})
    for part in (args[: len(args) // 2], args[len(args) // 2 :]):
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}
        yield _sse({**base, "choices": [{"index": 0, "delta": delta}]})
    yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    yield _sse({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})
    yield "data: [DONE]\n\n"
