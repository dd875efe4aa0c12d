"""One typed Settings object: every limit, path and timeout of the server.

Read from the environment with the prefix ``MMSERVE_`` (nested groups with ``__``, e.g.
``MMSERVE_FETCH__TIMEOUT_S=5``) and overridden by CLI flags. Every limit has a safe default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class FetchSettings(BaseModel):
    """How the server fetches user-supplied http(s) media URLs (SSRF-safe by default)."""

    enabled: bool = True
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 20.0
    max_bytes: int = 32 * MiB
    max_redirects: int = 3
    max_concurrency: int = 8
    # CIDR networks that are admitted even though they are private/loopback/...
    # (e.g. ["127.0.0.1/32"] in tests, or an internal image host).
    allow_networks: list[str] = Field(default_factory=list)
    # Host names (exact or suffix ".example.com") that may / may not be fetched.
    allow_hosts: list[str] = Field(default_factory=list)
    deny_hosts: list[str] = Field(default_factory=list)
    user_agent: str = "mmserve-fetch/0.1"


class LimitSettings(BaseModel):
    """Server-wide request limits; model cards may tighten them per model."""

    max_request_bytes: int = 128 * MiB
    max_image_side: int = 4000
    min_image_side: int = 8
    max_image_pixels: int = 4000 * 4000
    max_images_per_request: int = 32
    max_data_uri_bytes: int = 64 * MiB
    decode_timeout_s: float = 10.0
    max_decode_concurrency: int = 4
    max_messages: int = 2048
    max_n: int = 8
    max_stop_sequences: int = 4
    # Media ingestion (see docs/api.md "Images"): longest side for detail "low", the most
    # elongated image accepted, and how decoding is isolated from the server.
    low_detail_side: int = Field(default=512, gt=0)
    max_aspect_ratio: float = Field(default=200.0, ge=1.0)
    decode_isolation: Literal["process", "thread"] = Field(
        default="process",
        description="process: worker processes, killed on timeout or crash (safe default); "
        "thread: in-process threads (faster for small images, no isolation).",
    )
    decode_memory_mb: int = Field(default=2048, ge=0, description="Address-space cap per decode process (0: none).")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MMSERVE_", env_nested_delimiter="__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("mmserve-data")
    config: Path | None = Field(default=None, description="Catalog YAML; the demo catalog when unset.")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N; cards may override.")
    public_base_url: str | None = Field(
        default=None, description="External URL of this server, used in signed artifact links."
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Peers whose X-Forwarded-* headers are believed.",
    )
    secret_key: str | None = Field(
        default=None, description="Signs artifact URLs; generated and kept in the data dir when unset."
    )
    artifact_ttl_s: float = Field(default=24 * 3600, description="How long generated files are kept.")
    url_ttl_s: float = Field(default=3600, description="How long a signed artifact link stays valid.")
    log_level: str = "info"
    progress: bool = True
    load_on_start: bool = True
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
