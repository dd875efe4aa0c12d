"""A fake third-party OpenAI-compatible provider on loopback (simulates something outside mmserve).

It answers chat completions by echoing the last user text word by word, counts requests,
checks the bearer key, and can be told to fail with a status code.
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
