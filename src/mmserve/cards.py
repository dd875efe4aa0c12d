"""The model card: one entry of the catalog, for every task mmserve serves.

Cards are the vocabulary every layer speaks (engines read their own card, the catalog loads
and validates them, control prices and routes by them), so this module sits at the root with
``errors`` and ``settings`` and imports nothing from mmserve.

A card says what a model is (``id``, ``task``), how to run it (``engine`` + ``options``,
``source``), what it can do (``capabilities``), what a request may ask of it (``limits``),
what it costs (``pricing``) and how it is deployed (``deployment``). Unknown fields are
refused so that a typo in a catalog fails at start-up instead of being ignored.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

Task = Literal["chat", "image-generation", "speech", "transcription", "video-generation", "embedding"]
TASKS: tuple[str, ...] = ("chat", "image-generation", "speech", "transcription", "video-generation", "embedding")
ImageFormat = Literal["png", "jpeg", "webp", "gif", "bmp", "tiff", "avif"]
DEFAULT_IMAGE_FORMATS: tuple[ImageFormat, ...] = ("png", "jpeg", "webp")
# Output formats of chat models, parsed by mmserve.chatformat (engine independent).
ReasoningFormat = Literal["think-tags"]
ToolCallFormat = Literal["hermes"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
_SIZE = re.compile(r"^\d{1,5}x\d{1,5}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Capabilities(_Strict):
    """What the model can do. Fields irrelevant to a task are ignored for it."""

    # chat
    vision: bool = Field(
        default=False,
        validation_alias=AliasChoices("vision", "multimodal_enabled"),
        description="Accepts images (Pharia's multimodal_enabled flag).",
    )
    max_images: int = Field(default=8, ge=0, description="Images per request.")
    video: bool = Field(
        default=False,
        description="Accepts video_url parts: sampled frames (limits.video_fps, max_video_frames) go to the model "
        "as images.",
    )
    max_videos: int = Field(default=1, ge=0, description="Videos per request.")
    audio_input: bool = Field(default=False, description="Hears input_audio parts (an audio-language model).")
    max_audios: int = Field(default=4, ge=0, description="input_audio parts per request.")
    context_length: int | None = Field(default=None, gt=0, description="Tokens; read from the model if unset.")
    tools: bool = Field(default=False, description="Calls tools; set by tool_call_format.")
    reasoning: bool = Field(default=False, description="Reasons before answering; set by reasoning_format.")
    reasoning_format: ReasoningFormat | None = Field(
        default=None,
        description="How the model marks its reasoning: 'think-tags' = <think>...</think> (Qwen3, QwQ, "
        "DeepSeek-R1 and their distills).",
    )
    tool_call_format: ToolCallFormat | None = Field(
        default=None,
        description="How the model writes tool calls: 'hermes' = <tool_call>{json}</tool_call> "
        "(Qwen2.5/Qwen3, Hermes 2/3).",
    )
    # image / video generation
    sizes: list[str] = Field(default_factory=list, description="Allowed 'WxH' sizes; empty = any within limits.")
    edits: bool = False
    # speech
    voices: list[str] = Field(default_factory=list)
    # transcription
    languages: list[str] = Field(default_factory=list)
    translation: bool = False
    # video
    image_to_video: bool = False
    fps: list[int] = Field(default_factory=list)
    durations: list[float] = Field(default_factory=list, description="Allowed clip lengths in seconds.")
    # embedding (``vision`` and ``max_images`` above also apply: a CLIP-style card embeds images)
    embedding_dimensions: int | None = Field(
        default=None, gt=0, description="Length of the model's vectors; read from the model if unset."
    )
    matryoshka: bool = Field(
        default=False,
        description="Accepts the request's 'dimensions': vectors cut to their first N values and renormalised "
        "(for models trained for it, e.g. Matryoshka representation learning).",
    )

    @model_validator(mode="after")
    def _formats_imply_flags(self) -> Capabilities:
        # A format implies the capability. (A flag without a format is left to engines that
        # return parsed calls themselves, e.g. an upstream provider; local engines need the format.)
        self.tools = self.tools or self.tool_call_format is not None
        self.reasoning = self.reasoning or self.reasoning_format is not None
        return self

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: list[str]) -> list[str]:
        for s in v:
            if not _SIZE.match(s):
                raise ValueError(f"size '{s}' must look like '512x512'")
        return v


class Limits(_Strict):
    """Per-model request limits (tighter than or equal to the server's Settings.limits)."""

    max_output_tokens: int = Field(default=1024, gt=0)
    max_input_chars: int | None = Field(
        default=None,
        gt=0,
        description="Text input length. Speech: the input (unset: 4096). Chat: all text of a request (messages "
        "and tool definitions; unset: only the server's MMSERVE_LIMITS__MAX_CHAT_CHARS and the context bound).",
    )
    max_image_side: int | None = Field(default=None, gt=0)
    max_image_pixels: int | None = Field(default=None, gt=0, description="Also the cap for generated images.")
    image_formats: list[ImageFormat] = Field(default_factory=lambda: list(DEFAULT_IMAGE_FORMATS))
    allow_image_urls: bool = Field(default=True, description="False: base64 data URIs only (Pharia-style).")
    max_request_image_bytes: int | None = Field(
        default=None, gt=0, description="Bytes of all images of one request together (tightens the server's)."
    )
    max_request_image_pixels: int | None = Field(
        default=None, gt=0, description="Source pixels of all images of one request together (tightens the server's)."
    )
    max_audio_seconds: float = Field(default=600.0, gt=0)
    max_video_seconds: float = Field(default=12.0, gt=0)
    max_n: int = Field(default=4, ge=1)
    max_inputs: int = Field(default=2048, ge=1, description="Embedding inputs per request (OpenAI's limit).")
    min_image_side: int | None = Field(
        default=None, gt=0, description="Smallest accepted image side (raises the server's minimum)."
    )
    max_input_video_seconds: float = Field(default=60.0, gt=0, description="Longest video_url accepted.")
    video_fps: float = Field(default=1.0, gt=0, le=60, description="Frames sampled per second of a video_url.")
    max_video_frames: int = Field(
        default=8, ge=1, le=256, description="Most frames sampled from one video (spread evenly when fps gives more)."
    )
    image_input_side: int | None = Field(
        default=None,
        gt=0,
        description="Images are downscaled (aspect kept, never upscaled) until their short side is this. "
        "Unset: read from the loaded model's image processor.",
    )


class Pricing(_Strict):
    """Prices in ``currency``; zero means free. Used for metering and routing by cost."""

    currency: str = "USD"
    input_per_1m_tokens: float = Field(default=0.0, ge=0)
    output_per_1m_tokens: float = Field(default=0.0, ge=0)
    per_image: float = Field(default=0.0, ge=0)
    per_audio_second: float = Field(default=0.0, ge=0)
    per_video_second: float = Field(default=0.0, ge=0)


class Deployment(_Strict):
    mode: Literal["serverless", "dedicated"] = "serverless"
    replicas: int = Field(
        default=1,
        ge=1,
        le=64,
        validation_alias=AliasChoices("replicas", "max_replicas"),
        description="The most replicas (max_replicas): more load when every loaded one is busy and requests queue.",
    )
    min_replicas: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Serverless: replicas kept loaded (loaded at start, never idle-unloaded); 0: scale to zero. "
        "Dedicated deployments keep all their replicas.",
    )
    idle_unload_s: float | None = Field(default=None, gt=0, description="Serverless: unload after idle.")
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Requests running at once per replica. Unset: the engine's default (the transformers chat "
        "engine: its max_batch_size, as its requests share one batch; other engines: 4).",
    )
    max_queue: int = Field(default=64, ge=0, description="Requests waiting beyond max_concurrency.")
    device: str | None = Field(default=None, description="Overrides Settings.device for this model.")
    memory_gb: float | None = Field(
        default=None, gt=0, description="Budget hint for eviction; on a cluster also the memory a replica reserves."
    )
    process: bool | None = Field(
        default=None,
        description="Run each replica's engine in a worker process of its own on this machine: the model's "
        "decode loop then uses another core than the server's request handling (they share one GIL in "
        "one process). Costs the worker's start (its imports) and memory. Unset: MMSERVE_WORKER_PROCESSES "
        "(default false). Ignored on a cluster (replicas run in Ray actors) and for engines that run no model "
        "here (upstream providers, vLLM's own server).",
    )
    # Placement on a Ray cluster (MMSERVE_CLUSTER__ADDRESS); ignored in-process.
    num_cpus: float | None = Field(default=None, ge=0, description="CPUs a replica reserves on a node (default 1).")
    num_gpus: float | None = Field(default=None, ge=0, description="GPUs a replica reserves (fractions share one).")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom node resources a replica needs, e.g. {'a100': 1} (a node label)."
    )
    placement: Literal["spread", "pack"] = Field(
        default="spread", description="spread: a deployment's replicas on different nodes when possible; pack: any."
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> Deployment:
        if self.min_replicas > self.replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is more than replicas ({self.replicas})")
        return self

    def concurrency(self, default: int = 4) -> int:
        """``max_concurrency``, or ``default`` (the engine's) when the card leaves it unset."""
        return self.max_concurrency or default


SpeechEnvelope = Literal["always", "on_accept_json", "never"]


class Dialects(_Strict):
    """Provider dialects an operator turns on per model (the server-wide settings apply when unset)."""

    speech_envelope: SpeechEnvelope | None = Field(
        default=None,
        description="Speech answers in DO's JSON envelope {data: [{b64_json}]}: always, only for clients sending "
        "Accept: application/json (on_accept_json), or never. Unset: MMSERVE_SPEECH_ENVELOPE.",
    )


class ModelCard(_Strict):
    id: str
    task: Task
    engine: str
    options: dict[str, Any] = Field(default_factory=dict, description="Engine options (checked by the engine).")
    source: str | None = Field(
        default=None,
        description="Local path (relative to the catalog file), Hugging Face repo id (local cache), "
        "or 'demo:<name>' for a tiny model built locally.",
    )
    revision: str | None = None
    description: str = ""
    owned_by: str = "mmserve"
    aliases: list[str] = Field(default_factory=list)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    limits: Limits = Field(default_factory=Limits)
    pricing: Pricing = Field(default_factory=Pricing)
    deployment: Deployment = Field(default_factory=Deployment)
    dialects: Dialects = Field(default_factory=Dialects)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("must be 1-128 characters: letters, digits and . _ : / @ + -")
        if v == "auto":
            raise ValueError("'auto' is reserved for routing")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.capabilities.vision and self.capabilities.max_images == 0:
            raise ValueError("capabilities.max_images must be > 0 when vision is enabled")
        return self


class RouterSpec(_Strict):
    """A router alias: requests for ``id`` go to the best-fit candidate by ``policy``.

    ``auto`` is a built-in router over every card of the request's task (policy: cheapest).
    """

    id: str
    task: Task
    policy: Literal["cheapest", "fastest", "priority"] = "cheapest"
    candidates: list[str] = Field(default_factory=list, description="Card ids; empty: every card of the task.")
    description: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return ModelCard._id(v)


class CatalogFile(_Strict):
    """The YAML document: ``models:`` is a list of cards, ``routers:`` a list of router aliases."""

    models: list[ModelCard] = Field(default_factory=list)
    routers: list[RouterSpec] = Field(default_factory=list)
