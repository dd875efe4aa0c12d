"""The options every upstream card takes (``options:`` of an ``upstream-*`` card), validated when the catalog loads."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from mmserve.engines.base import EngineOptions


class UpstreamOptions(EngineOptions):
    base_url: str = Field(description="The provider's OpenAI-compatible API root, e.g. https://api.provider.com/v1")
    model: str | None = Field(default=None, description="The provider's model name; default: the card id.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the API key.")
    provider: str | None = Field(default=None, description="The provider's name in messages; default: its host.")
    timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="Longest wait for the provider's next bytes (an answer not streamed: the whole answer).",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent with every request.")
    max_connections: int = Field(default=100, ge=1, description="Connections kept to the provider (one pool).")
    max_concurrency: int = Field(
        default=64, ge=1, description="Requests in flight to the provider at once, all its cards together."
    )
    queue_timeout_s: float = Field(default=30.0, ge=0, description="Longest wait for one of those slots.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Retries of 408/409/429/5xx and connect failures.")
    retry_backoff_s: float = Field(default=0.5, ge=0, description="First backoff when no Retry-After is sent.")
    max_retry_wait_s: float = Field(
        default=20.0, ge=0, description="A longer Retry-After is not waited for: the request fails (or falls back)."
    )
    max_response_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, description="Largest answer read.")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api.provider.com/v1")
        return v.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _header_text(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not name or any(c in name for c in " :\r\n\0") or any(c in value for c in "\r\n\0"):
                raise ValueError(f"the header {name!r}: names hold no space or colon, and neither a line break or NUL")
        return v
