"""Bearer-key authentication and per-key rate limiting, as an ASGI middleware.

With ``Settings.auth`` off every request is the anonymous principal (all models, no
limits). With it on, every route but the probes (``/health``, ``/ready``), the API docs and signed artifact links
(the signature is the authorization, as with presigned URLs) needs
``Authorization: Bearer <key>``. Keys and limits are checked from the headers alone,
before the body is read: a caller without a valid key, or past its limits, costs the
server no upload, JSON parsing or validation.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mmserve.control.context import ANONYMOUS, Principal, current
from mmserve.control.keys import KeyStore
from mmserve.control.ratelimit import Limiter, Limits
from mmserve.errors import AuthenticationError, MMServeError
from mmserve.settings import Settings

ADMIN_KEY_ID = "admin"  # the key id of Settings.admin_key (it has no row in the key table)
OPEN_PATHS = ("/health", "/ready")
OPEN_PREFIXES = ("/v1/artifacts/",)


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        keys: KeyStore,
        limiter: Limiter,
        *,
        open_paths: Iterable[str] = (),
        open_prefixes: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.limiter = limiter
        self.open_paths = frozenset([*OPEN_PATHS, *open_paths])
        extra = tuple(open_prefixes)
        # a prefix opens itself and what is under it ("/console", "/console/app.js"), not "/consoles"
        self.open_paths |= frozenset(p.rstrip("/") for p in extra)
        self.open_prefixes = (*OPEN_PREFIXES, *(p.rstrip("/") + "/" for p in extra))

    def is_open(self, path: str) -> bool:
        """Whether ``path`` (a request's, or a route's template) needs no key."""
        return path in self.open_paths or path.startswith(self.open_prefixes)

    async def authenticate(self, path: str, authorization: str) -> Principal:
        """The caller of a request to ``path`` (also set on the request context), or a 401 / 429."""
        ctx = current()
        if not self.settings.auth or self.is_open(path):
            ctx.principal = ANONYMOUS
            return ANONYMOUS
        secret = _bearer(authorization)
        found = await self._principal(secret)
        if found is None:
            raise AuthenticationError(
                "Invalid API key. Send 'Authorization: Bearer <key>' with a key made by `mmserve keys create`.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if found.expires_at is not None and found.expires_at <= time.time():
            raise AuthenticationError(
                "This API key has expired. Make a new one with `mmserve keys create` (--expires-in sets its lifetime).",
                headers={"WWW-Authenticate": "Bearer"},
                code="key_expired",
            )
        ctx.principal = found
        if found.key_id is not None:
            ctx.headers.update(await self.limiter.admit(found.key_id, found.limits))
        return found

    async def _principal(self, secret: str) -> Principal | None:
        admin = self.settings.admin_key
        if admin and hmac.compare_digest(secret.encode(), admin.encode()):
            return Principal(key_id=ADMIN_KEY_ID, name=ADMIN_KEY_ID, admin=True)
        key = await self.keys.lookup(secret)
        if key is None:
            return None
        return Principal(
            key_id=key.id,
            name=key.name,
            admin=key.admin,
            models=key.models,
            limits=Limits(requests_per_min=key.requests_per_min, tokens_per_min=key.tokens_per_min),
            expires_at=key.expires_at,
        )


class AuthMiddleware:
    """Runs the :class:`Authenticator` on every HTTP request before the app (and its body parsing) sees it."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.authenticator.authenticate(_route_path(scope), Headers(scope=scope).get("authorization", ""))
        except MMServeError as e:
            await JSONResponse(e.to_dict(), status_code=e.status_code, headers=e.headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the routes match (without the ASGI ``root_path`` a proxy setup may add)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "This server needs an API key: send 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
            code="missing_api_key",
        )
    return token.strip()
