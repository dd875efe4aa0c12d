"""API keys: created once (the secret is shown only then), stored hashed, revocable.

A key is ``mms-`` + 32 random bytes (url-safe base64). Only its SHA-256 is stored: the
secret has 256 bits of entropy, so a fast hash is the right tool (a slow password hash
protects guessable secrets; it would only slow every request here). Lookups go by hash
through a short-lived in-memory cache, so a revocation made by the CLI in another process
takes effect within ``Settings.key_cache_ttl_s``; with Redis (``MMSERVE_REDIS_URL``) a
revocation is published and every gateway forgets the key at once
(:mod:`mmserve.control.redis_state`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import JSON, Boolean, Float, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from mmserve.db import Base, Database

PREFIX = "mms-"
CACHE_TTL_S = 5.0


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    requests_per_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # migration 0002


@dataclass(frozen=True)
class ApiKey:
    id: str
    prefix: str
    name: str
    models: tuple[str, ...] | None
    requests_per_min: int | None
    tokens_per_min: int | None
    admin: bool
    created_at: float
    revoked_at: float | None
    expires_at: float | None = None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKey:
        return cls(
            row.id,
            row.prefix,
            row.name,
            tuple(row.models) if row.models is not None else None,
            row.requests_per_min,
            row.tokens_per_min,
            row.admin,
            row.created_at,
            row.revoked_at,
            row.expires_at,
        )


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, db: Database, *, cache_ttl_s: float = CACHE_TTL_S) -> None:
        self.db = db
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        #: awaited with a revoked key's hash after the revocation is stored (publishes it to other gateways)
        self.on_revoke: list[Callable[[str], Awaitable[None]]] = []

    def forget(self, key_hash: str) -> None:
        """Drop one key from the cache (revoked elsewhere): its next request reads the database."""
        self._cache.pop(key_hash, None)

    def clear_cache(self) -> None:
        self._cache.clear()

    async def create(
        self,
        name: str = "",
        *,
        models: list[str] | None = None,
        requests_per_min: int | None = None,
        tokens_per_min: int | None = None,
        admin: bool = False,
        expires_in_s: float | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret exists outside the caller)."""
        now = time.time()
        secret = PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id="key_" + secrets.token_hex(8),
            hash=hash_secret(secret),
            prefix=secret[:10],
            name=name,
            models=models,
            requests_per_min=requests_per_min,
            tokens_per_min=tokens_per_min,
            admin=admin,
            created_at=now,
            revoked_at=None,
            expires_at=now + expires_in_s if expires_in_s is not None else None,
        )
        async with self.db.session() as s, s.begin():
            s.add(row)
        return ApiKey.of(row), secret

    async def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        async with self.db.session() as s:
            q = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
            if not include_revoked:
                q = q.where(ApiKeyRow.revoked_at.is_(None))
            return [ApiKey.of(r) for r in (await s.scalars(q)).all()]

    async def names(self, ids: Iterable[str]) -> dict[str, str]:
        """Key id -> name for the keys among ``ids`` (revoked ones too: their usage stays)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        async with self.db.session() as s:
            rows = (await s.execute(select(ApiKeyRow.id, ApiKeyRow.name).where(ApiKeyRow.id.in_(wanted)))).all()
        return {r.id: r.name for r in rows}

    async def revoke(self, id_or_prefix: str) -> ApiKey | None:
        async with self.db.session() as s, s.begin():
            q = select(ApiKeyRow).where(
                (ApiKeyRow.id == id_or_prefix) | (ApiKeyRow.prefix == id_or_prefix), ApiKeyRow.revoked_at.is_(None)
            )
            rows = (await s.scalars(q)).all()
            if len(rows) != 1:
                return None
            rows[0].revoked_at = time.time()
            key = ApiKey.of(rows[0])
            key_hash = rows[0].hash
        self._cache.clear()
        for publish in self.on_revoke:
            await publish(key_hash)
        return key

    async def update(self, key_id: str, **fields: object) -> ApiKey | None:
        """Change an active key's name, models or limits (None clears a limit); None if there is no such key."""
        allowed = {"name", "models", "requests_per_min", "tokens_per_min"}
        async with self.db.session() as s, s.begin():
            row = await s.scalar(select(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None)))
            if row is None:
                return None
            for name, value in fields.items():
                if name in allowed:
                    setattr(row, name, value)
            key = ApiKey.of(row)
            key_hash = row.hash
        self._cache.clear()
        for publish in self.on_revoke:  # every gateway forgets the key: its next lookup reads the change
            await publish(key_hash)
        return key

    async def lookup(self, secret: str) -> ApiKey | None:
        """The key for ``secret``, or None (unknown or revoked). An expired key is returned: callers
        tell its owner why it stopped working (:attr:`ApiKey.expired`)."""
        digest = hash_secret(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1]
        async with self.db.session() as s:
            row = await s.scalar(select(ApiKeyRow).where(ApiKeyRow.hash == digest))
        key = ApiKey.of(row) if row is not None and row.revoked_at is None else None
        if len(self._cache) > 10_000:  # bounded: random bad keys must not grow memory
            self._cache.clear()
        self._cache[digest] = (now, key)
        return key
