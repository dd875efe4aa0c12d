"""Provider base URLs under ``/v1``: ``/v1/openai/...`` (DeepInfra) and ``/v1/inference/...`` (Gravix Layer).

The seeds' examples set ``base_url`` to ``https://api.deepinfra.com/v1/openai`` and
``https://api.gravixlayer.com/v1/inference``; a user who changes only the host posts to
``/v1/openai/chat/completions``. Those prefixes are read as ``/v1/`` before any routing,
authentication or metrics, so they reach the same endpoints (and show as them in /metrics).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

ALIASES = ("/v1/openai/", "/v1/inference/")


class PathAliases:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            for alias in ALIASES:
                if path.startswith(alias):
                    rest = path[len(alias) :]
                    raw = scope.get("raw_path")
                    scope = {**scope, "path": "/v1/" + rest}
                    if isinstance(raw, bytes) and raw.startswith(alias.encode()):
                        scope["raw_path"] = b"/v1/" + raw[len(alias) :]
                    break
        await self.app(scope, receive, send)
