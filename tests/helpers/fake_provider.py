"""A fake third-party OpenAI-compatible provider on loopback (simulates something outside mmserve).

One server answers every task mmserve's upstream engines call, each in its own module:
chat completions here (it echoes the last user text word by word), images, speech and
transcriptions in :mod:`tests.helpers.fake_provider_media`, video jobs in
:mod:`tests.helpers.fake_provider_video`. It checks the bearer key, records every request
(``requests``: JSON bodies or form summaries; ``hits``: when and where), and misbehaves on
demand: ``fail_status`` (every request), ``fail_next`` (the next requests to a path: a status,
optionally with Retry-After), ``delay_s`` (a wait before answering: timeouts), ``gate`` (streams
stop after their first piece until it is set: slow streams), ``chat_answer`` (what a whole chat
answer is instead: malformed ones).

Given tools (and a tool_choice other than "none"), chat calls one: ``{"text": <the last user
text>}`` to the named (else the first) tool; streamed as OpenAI streams it, the name first, then
the arguments in fragments.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.helpers.server import LiveServer


@dataclass
class Fault:
    status: int
    path: str = ""  # applies to request paths starting with this ("" : any)
    retry_after: str | None = None
    message: str = "provider down"


class FakeProvider:
    def __init__(self, key: str = "sk-upstream", fail_status: int | None = None) -> None:
        self.key = key
        self.fail_status = fail_status
        self.requests: list[dict[str, Any]] = []
        self.hits: list[tuple[float, str, int]] = []  # (time.monotonic(), path, status answered)
        self.faults: list[Fault] = []
        self.delay_s = 0.0
        self.gate: threading.Event | None = None
        self.chat_answer: dict[str, Any] | None = None  # a whole chat answer given as is (a malformed one)
        # images and videos
        self.files: dict[str, tuple[bytes, str]] = {}  # served at /files/{name}: the links it returns
        self.image_links = False  # answer images as links, not base64
        self.link_base: str | None = None  # the origin of those links (None: this server)
        self.transcript_text = "hello from the provider"
        self.videos: dict[str, dict[str, Any]] = {}
        self.hold_videos = False  # jobs stay in progress while set
        self.video_links = False  # completed videos carry a url
        self.downloads: list[str] = []  # video ids whose content was downloaded
        self._lock = threading.Lock()
        self.app = app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await request.json()
            self.requests.append(body)
            refused = await self.check(request)
            if refused is not None:
                return refused
            call = _tool_call(body)
            if call is not None and body.get("stream"):
                return StreamingResponse(_tool_call_events(body, call), media_type="text/event-stream")
            if call is not None:
                return _tool_call_answer(body, call)
            words = _last_text(body).split() or ["ok"]
            words = words[: body.get("max_tokens") or len(words)]
            prompt = sum(len(_text(m).split()) for m in body["messages"])
            usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}
            if not body.get("stream") and self.chat_answer is not None:
                return self.chat_answer
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

            async def events() -> Any:
                base = {"id": "fake-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
                yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
                for i, w in enumerate(words):
                    yield _sse({**base, "choices": [{"index": 0, "delta": {"content": (" " if i else "") + w}}]})
                    if i == 0:
                        await self.wait_gate()
                yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                yield _sse({**base, "choices": [], "usage": usage})
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        @app.get("/v1/models")
        async def models() -> Any:
            return {"object": "list", "data": []}

        from tests.helpers.fake_provider_media import add_media_routes
        from tests.helpers.fake_provider_video import add_video_routes

        add_media_routes(self)
        add_video_routes(self)
        self.server = LiveServer(app)

    # ------------------------------------------------------------------ behaviour switches

    def fail_next(
        self, status: int, *, times: int = 1, path: str = "", retry_after: str | None = None, message: str = ""
    ) -> None:
        with self._lock:
            self.faults += [Fault(status, path, retry_after, message or "provider down")] * times

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
        self.fail_status = None
        self.delay_s = 0.0
        self.gate = None

    async def check(self, request: Request) -> Response | None:
        """Auth, then a scripted failure or delay; None when the request is to be answered."""
        path = request.url.path
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return self._answer(path, 401, "bad key")
        fault = None
        with self._lock:
            for i, f in enumerate(self.faults):
                if path.startswith(f.path):
                    fault = self.faults.pop(i)
                    break
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self._answer(path, fault.status, fault.message, headers)
        if self.fail_status:
            return self._answer(path, self.fail_status, "provider down")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.hits.append((time.monotonic(), path, 200))
        return None

    def _answer(self, path: str, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        self.hits.append((time.monotonic(), path, status))
        body = {"error": {"message": f"{message} (key {self.key})", "type": "server", "param": None}}
        return JSONResponse(body, status_code=status, headers=headers)

    async def wait_gate(self) -> None:
        while self.gate is not None and not self.gate.is_set():
            await asyncio.sleep(0.01)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def __enter__(self) -> FakeProvider:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.gate is not None:
            self.gate.set()
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


TOOL_CALL_USAGE = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


def _tool_call_answer(body: dict[str, Any], name: str) -> dict[str, Any]:
    args = json.dumps({"text": _last_text(body)})
    call = {"id": "call_fake", "type": "function", "function": {"name": name, "arguments": args}}
    return {
        "id": "fake-2",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "usage": TOOL_CALL_USAGE,
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
            }
        ],
    }


def _tool_call_events(body: dict[str, Any], name: str) -> Any:
    base = {"id": "fake-2", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
    args = json.dumps({"text": _last_text(body)})
    head = {"index": 0, "id": "call_fake", "type": "function", "function": {"name": name, "arguments": ""}}
    yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [head]}}]})
    for part in (args[: len(args) // 2], args[len(args) // 2 :]):
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}
        yield _sse({**base, "choices": [{"index": 0, "delta": delta}]})
    yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    yield _sse({**base, "choices": [], "usage": TOOL_CALL_USAGE})
    yield "data: [DONE]\n\n"
