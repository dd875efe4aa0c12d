"""Pydantic shapes of the admin API: key creation and update, and the ``api_key`` object."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, StrictBool

from mmserve.api.jsonbody import RequestModel
from mmserve.control.keys import ApiKey

# SQLite integers are 64-bit; a limit past a billion a minute means "no limit" anyway
MAX_LIMIT = 1_000_000_000
MAX_LIFETIME_S = 100 * 365 * 86400


class KeyCreate(RequestModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    models: list[str] | None = Field(default=None, max_length=1000, description="Allowed models; null: all.")
    requests_per_min: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    tokens_per_min: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    admin: StrictBool = False  # true or false: a 1 or a "true" that passes for one is refused
    expires_in_s: float | None = Field(
        default=None, gt=0, le=MAX_LIFETIME_S, allow_inf_nan=False, description="Lifetime; null: no expiry."
    )


class KeyUpdate(RequestModel):
    """Only the fields sent change; ``null`` clears a limit or allows every model."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    models: list[str] | None = Field(default=None, max_length=1000)
    requests_per_min: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    tokens_per_min: int | None = Field(default=None, ge=1, le=MAX_LIMIT)


def key_object(k: ApiKey) -> dict[str, Any]:
    """A key as the API shows it: never its secret or hash."""
    return {
        "id": k.id,
        "object": "api_key",
        "prefix": k.prefix,
        "name": k.name,
        "models": list(k.models) if k.models is not None else None,
        "requests_per_min": k.requests_per_min,
        "tokens_per_min": k.tokens_per_min,
        "admin": k.admin,
        "created_at": k.created_at,
        "revoked_at": k.revoked_at,
        "expires_at": k.expires_at,
    }
