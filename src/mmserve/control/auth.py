"""Bearer-key authentication and per-key rate limiting, as one app-wide FastAPI dependency.

With ``Settings.auth`` off every request is the anonymous principal (all models, no
limits). With it on, every route but ``/health`` and signed artifact links (the signature
is the authorization, as with presigned URLs) needs ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from mmserve.api.errors import AuthenticationError
from mmserve.control.context import ANONYMOUS, Principal, current
from mmserve.control.keys import KeyStore
from mmserve.control.ratelimit import Limits, RateLimiter
from mmserve.settings import Settings

OPEN_PATHS = ("/health",)
OPEN_PREFIXES = ("/v1/artifacts/",)


class Authenticator:
    def __init__(self, settings: Settings, keys: KeyStore, limiter: RateLimiter) -> None:
        self.settings = settings
        self.keys = keys
        self.limiter = limiter

    async def __call__(self, request: Request) -> Principal:
        ctx = current()
        path = request.url.path
        if not self.settings.auth or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            ctx.principal = ANONYMOUS
            return ANONYMOUS
        secret = _bearer(request)
        found = await self._principal(secret)
        if found is None:
            raise AuthenticationError(
                "Invalid API key. Send 'Authorization: Bearer <key>' with a key made by `mmserve keys create`.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        ctx.principal = found
        if found.key_id is not None:
            ctx.headers.update(self.limiter.admit(found.key_id, found.limits))
        return found

    async def _principal(self, secret: str) -> Principal | None:
        admin = self.settings.admin_key
        if admin and hmac.compare_digest(secret.encode(), admin.encode()):
            return Principal(key_id="admin", name="admin", admin=True)
        key = await self.keys.lookup(secret)
        if key is None:
            return None
        return Principal(
            key_id=key.id,
            name=key.name,
            admin=key.admin,
            models=key.models,
            limits=Limits(requests_per_min=key.requests_per_min, tokens_per_min=key.tokens_per_min),
        )


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "This server needs an API key: send 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
            code="missing_api_key",
        )
    return token.strip()
