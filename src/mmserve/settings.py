"""One typed Settings object: every limit, path and timeout of the server.

Read from the environment with the prefix ``MMSERVE_`` (nested groups with ``__``, e.g.
``MMSERVE_FETCH__TIMEOUT_S=5``) and overridden by CLI flags. Every limit has a safe default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
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
    # Slow clients (answered 408 in the envelope, connection closed): a request's headers must
    # arrive within header_timeout_s of its first byte (or of the connection); its body within
    # body_timeout_s in all, with no gap longer than body_idle_timeout_s.
    header_timeout_s: float = Field(default=15.0, gt=0)
    body_timeout_s: float = Field(default=300.0, gt=0)
    body_idle_timeout_s: float = Field(default=30.0, gt=0)
    max_image_side: int = 4000
    min_image_side: int = 8
    max_image_pixels: int = 4000 * 4000
    max_images_per_request: int = 32
    # all the images of one request together (cards may tighten): bytes received (fetched or
    # sent) and source pixels decoded; over either, 413 request_images_too_large
    max_request_image_bytes: int = Field(default=64 * MiB, gt=0)
    max_request_image_pixels: int = Field(default=64_000_000, gt=0)
    max_data_uri_bytes: int = 64 * MiB
    decode_timeout_s: float = 10.0
    max_decode_concurrency: int = 4
    max_messages: int = 2048
    # Chat text (messages and tool definitions) is bounded before any tokenizer runs: tokenising
    # a 10 MB prompt took 10-26 s of CPU. Cards bound it further (limits.max_input_chars, context).
    max_chat_chars: int = Field(default=1_000_000, gt=0, description="Characters of text per chat request.")
    max_chat_bytes: int = Field(default=4 * MiB, gt=0, description="UTF-8 bytes of text per chat request.")
    max_n: int = 8
    max_stop_sequences: int = 4
    max_prompts: int = Field(default=64, ge=1, description="Prompts in one legacy completion request.")
    max_tools: int = 128  # OpenAI's limit; each tool's schema becomes part of the decoding grammar
    # generated images: the default cap on pixels per image when the card sets none, and the smallest side
    max_generated_image_pixels: int = 1024 * 1024
    min_generated_image_side: int = 64
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
    # Video input (chat video_url parts): bounds checked from the header and again while decoding.
    max_input_video_seconds: float = Field(default=600.0, gt=0, description="Longest video; cards set their own.")
    max_video_decoded_frames: int = Field(
        default=18000, ge=1, description="Frames decoded per video, sampled or not (vLLM's CVE-2026-5497)."
    )
    max_video_side: int = Field(default=4096, gt=0)
    max_video_pixels: int = Field(default=4096 * 2160, gt=0, description="Pixels of one video frame.")
    video_decode_timeout_s: float = Field(default=30.0, gt=0, description="Per video; the worker is killed after.")


class AudioSettings(BaseModel):
    """Server-wide bounds on speech and transcription requests; model cards may tighten them."""

    max_upload_bytes: int = Field(default=25 * MiB, description="Audio file uploads (OpenAI's limit); larger: 413.")
    max_audio_seconds: float = Field(default=3600.0, description="Longest audio decoded; cards set their own below.")
    max_speech_chars: int = Field(default=4096, description="Longest speech input; cards set their own below.")
    decode_timeout_s: float = 60.0
    max_decode_concurrency: int = 2
    max_form_fields: int = 32


class JobSettings(BaseModel):
    """Durable asynchronous jobs (video): dispatch, leases, retries and retention."""

    dispatch_interval_s: float = Field(
        default=2.0, gt=0, description="How often the runner looks for queued work it was not told about."
    )
    progress_interval_s: float = Field(
        default=0.5, gt=0, description="How often a running job's progress and heartbeat are written."
    )
    stale_after_s: float = Field(
        default=60.0, gt=0, description="A running job whose heartbeat is older is taken over (its server died)."
    )
    max_attempts: int = Field(
        default=2, ge=1, description="Starts of one job: interrupted by a crash, a job re-runs until this many."
    )
    result_ttl_s: float | None = Field(
        default=None, gt=0, description="How long finished jobs and their files are kept (None: artifact_ttl_s)."
    )
    cleanup_interval_s: float = Field(default=60.0, gt=0, description="How often expired jobs are removed.")
    max_queued_s: float = Field(
        default=24 * 3600, gt=0, description="A job still queued after this long fails (no server runs its model)."
    )
    poll_after_ms_default: int = Field(default=1000, ge=0, description="Poll hint before progress allows an estimate.")
    poll_after_ms_min: int = Field(default=200, ge=0, description="Lowest openai-poll-after-ms hint.")
    poll_after_ms_max: int = Field(default=5000, ge=0, description="Highest openai-poll-after-ms hint.")
    shutdown_grace_s: float = Field(
        default=10.0, ge=0, description="On shutdown, how long running jobs get to stop and be requeued."
    )


class ClusterSettings(BaseModel):
    """Engine replicas on a Ray cluster (docs/deployment.md); unset ``address``: every replica in this process."""

    address: str | None = Field(
        default=None,
        description="host:6379 (a node's GCS), or 'auto' (the Ray node this gateway runs on). Needs "
        "mmserve[cluster]. Not ray://: Ray Client cannot stream from actors.",
    )
    namespace: str = Field(
        default="mmserve", description="Ray namespace of mmserve's actors; gateways share replicas within one."
    )
    start_timeout_s: float = Field(
        default=300.0, gt=0, description="How long a replica may take to be placed and load its model."
    )
    health_check_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often replicas are pinged (renewing this gateway's lease on shared replicas); a dead one "
        "is started again on a live node. Also the health check of worker processes (deployment.process).",
    )
    log_to_driver: bool = Field(default=False, description="Show replicas' logs in the gateway's log.")

    @field_validator("address")
    @classmethod
    def _not_ray_client(cls, value: str | None) -> str | None:
        # Replicas stream every answer as an actor generator, which Ray Client does not carry
        # (ray-project/ray#43357, "won't fix"): with ray:// every request would fail.
        if value is not None and value.strip().lower().startswith("ray://"):
            raise ValueError(
                "a ray:// address goes through Ray Client, which cannot stream from actors (every request would "
                "fail). Give the head's GCS address (host:6379) and let the gateway reach the cluster's nodes, or "
                "run the gateway on a Ray node with 'auto'"
            )
        return value


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
    artifacts_dir: Path | None = Field(
        default=None,
        description="Where generated files are kept (<data_dir>/artifacts when unset). Several gateways "
        "share one directory (NFS, a mounted volume) so that any of them serves any job's files.",
    )
    artifact_ttl_s: float = Field(default=24 * 3600, description="How long generated files are kept.")
    responses_ttl_s: float = Field(
        default=30 * 86400, gt=0, description="How long stored Responses API responses are kept (store: true)."
    )
    url_ttl_s: float = Field(default=3600, description="How long a signed artifact link stays valid.")
    memory_budget_gb: float | None = Field(
        default=None, description="Serverless models are evicted (LRU) to stay under this; None: no budget."
    )
    idle_check_interval_s: float = Field(default=5.0, gt=0, description="How often idle models are checked.")
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch's intra-op threads (one count per process: torch's setting is process-wide, and each "
        "engine computing at once runs a team of that many). Unset: OMP_NUM_THREADS when set, else the cores "
        "divided by the catalog's torch replicas, at least 1.",
    )
    worker_processes: bool = Field(
        default=False,
        description="Run every model's replicas in worker processes of their own (a card's deployment.process "
        "overrides it either way): the models' decode loops then use other cores than the server's request "
        "handling. Ignored on a Ray cluster.",
    )
    log_level: str = "info"
    progress: bool = True
    load_on_start: bool = True
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the job/key/usage database; SQLite in the data dir when unset. "
        "postgresql://user:pass@host/db needs mmserve[postgres].",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis (or Valkey) shared by every gateway: rate-limit windows, key revocations, route "
        "cooldowns. Unset: each process keeps its own (one gateway). Needs mmserve[redis].",
    )
    redis_prefix: str = Field(default="mmserve:", description="Prefix of every Redis key and channel mmserve uses.")
    auth: bool = Field(
        default=False, description="Require a bearer API key on every endpoint but the probes (/health, /ready)."
    )
    admin_key: str | None = Field(
        default=None, description="A bootstrap key with admin rights (not stored); keys are made with `mmserve keys`."
    )
    route_cooldown_s: float = Field(
        default=10.0, ge=0, description="A routed model that failed is tried last for this long."
    )
    key_cache_ttl_s: float = Field(default=5.0, ge=0, description="A revoked key stops working within this.")
    usage_flush_interval_s: float = Field(default=0.5, gt=0, description="Usage records are written in batches.")
    usage_journal: bool = Field(
        default=True,
        description="Write each usage record to a journal file before its response ends, so that a killed "
        "process loses none (replayed at the next start); false: a crash loses up to usage_flush_interval_s.",
    )
    audio: AudioSettings = Field(default_factory=AudioSettings)
    speech_envelope: Literal["always", "on_accept_json", "never"] = Field(
        default="on_accept_json",
        description="DO's speech dialect: answer {data: [{b64_json}]} always (DO's curl, which sends no Accept "
        "header), only to clients sending Accept: application/json, or never. Cards may override (dialects).",
    )
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"
