"""Video jobs: validate a request against the card at submit time, queue it, read, list, delete, serve files.

Everything a model cannot do is refused here with a 4xx naming the field (unknown model,
size, seconds, fps, a reference image for a text-only model or one that does not decode),
so a queued job only fails for reasons nobody could see in advance.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mmserve.api.state import AppState
from mmserve.api.videos.protocol import CreateInput, VideoCreateRequest
from mmserve.cards import ModelCard
from mmserve.control.context import current
from mmserve.control.routing import AUTO, Needs
from mmserve.engines.types import VideoGenInput
from mmserve.errors import (
    InvalidRequestError,
    MMServeError,
    ModelCapabilityError,
    NotFoundError,
    OverloadedError,
    clip,
)
from mmserve.jobs.fallback import ENGINE_STATE, FALLBACK_MODELS
from mmserve.jobs.store import VideoJob, new_job_id
from mmserve.media.image.ingest import ImageRef
from mmserve.storage.artifacts import ArtifactMeta

if TYPE_CHECKING:
    from PIL.Image import Image

    from mmserve.runtime.runtime import Runtime

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*$")
REFERENCE_TTL_S = 7 * 24 * 3600  # kept while the job waits; removed as soon as it finishes
Variant = Literal["video", "thumbnail", "spritesheet"]
REMIXED_FROM = "remixed_from_video_id"  # kept in the job's params


@dataclass(frozen=True)
class ClipSpec:
    width: int
    height: int
    seconds: float
    fps: int

    @property
    def num_frames(self) -> int:
        return max(1, round(self.seconds * self.fps))


class VideoService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.store = state.jobs.store

    # ------------------------------------------------------------------ create

    async def create(self, inp: CreateInput, *, owner: str | None) -> VideoJob:
        body = inp.body
        cards = self._cards(body.model)
        card = cards[0]
        spec = clip_spec(card, body, self.state.runtime)
        image = await self._reference(card, inp, spec)
        fallbacks = self._fallbacks(cards[1:], body, spec, image is not None)
        await self._check_queue(card)
        job_id = new_job_id()
        reference = None
        if image is not None:
            reference = await asyncio.to_thread(self._save_reference, job_id, image, owner)
        job = VideoJob(
            id=job_id,
            owner=owner,
            model=card.id,
            prompt=body.prompt,
            width=spec.width,
            height=spec.height,
            seconds=spec.seconds,
            fps=spec.fps,
            num_frames=spec.num_frames,
            seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
            params={
                **({"negative_prompt": body.negative_prompt} if body.negative_prompt else {}),
                **({FALLBACK_MODELS: fallbacks} if fallbacks else {}),
            },
            reference_artifact=reference,
            created_at=time.time(),
        )
        job = await self.store.create(job)
        self.state.jobs.notify()
        return job

    def _fallbacks(self, cards: list[ModelCard], body: VideoCreateRequest, spec: ClipSpec, image: bool) -> list[str]:
        """The route's next cards that make this very clip (size, length, fps, a reference image):
        the job runner moves the job to them, in order, when its model fails before starting it."""
        out = []
        for card in cards:
            if image and not card.capabilities.image_to_video:
                continue
            try:
                if clip_spec(card, body, self.state.runtime) == spec:
                    out.append(card.id)
            except MMServeError:
                continue
        return out

    async def remix(self, video_id: str, prompt: str, *, owner: str | None) -> VideoJob:
        """A new job from a completed video's model, size, length, fps, seed and reference, with a new prompt.

        The same seed starts the diffusion from the same noise, so the remix keeps the source's
        composition where the prompts agree. Only the video's owner may remix it.
        """
        source = await self.get(video_id, owner=owner)
        if source.status != "completed":
            detail = f": {source.error_message}" if source.status == "failed" else f" ({source.progress}% done)"
            raise InvalidRequestError(
                f"Only a completed video can be remixed; '{video_id}' is {source.status}{detail}.",
                param="video_id",
                code="video_failed" if source.status == "failed" else "video_not_ready",
            )
        card = self._card(source.model)  # the key may still use the model; the model is still served
        await self._check_queue(card)
        job_id = new_job_id()
        reference = None
        if source.reference_artifact:
            reference = await asyncio.to_thread(self._copy_reference, source.reference_artifact, job_id, owner)
        job = VideoJob(
            id=job_id,
            owner=owner,
            model=source.model,
            prompt=prompt,
            width=source.width,
            height=source.height,
            seconds=source.seconds,
            fps=source.fps,
            num_frames=source.num_frames,
            seed=source.seed,
            # not the source's engine state (a provider's job id: the remix is a new job) nor its fallbacks
            params={
                **{k: v for k, v in source.params.items() if k not in (ENGINE_STATE, FALLBACK_MODELS)},
                REMIXED_FROM: source.id,
            },
            reference_artifact=reference,
            created_at=time.time(),
        )
        job = await self.store.create(job)
        self.state.jobs.notify()
        return job

    def _copy_reference(self, aid: str, job_id: str, owner: str | None) -> str:
        """The remix's own copy of the source's reference (each job's files go with it)."""
        try:
            _, path = self.state.artifacts.get(aid)
            data = path.read_bytes()
        except (NotFoundError, OSError):
            raise InvalidRequestError(
                "The reference image of this video is no longer stored, so it cannot be remixed; create a new video.",
                param="video_id",
                code="reference_missing",
            ) from None
        meta = ArtifactMeta(
            "image/png", filename=f"{job_id}-reference.png", ttl_s=REFERENCE_TTL_S, owner=owner, kind="video-reference"
        )
        return self.state.artifacts.put_bytes(data, meta).id

    async def _check_queue(self, card: ModelCard) -> None:
        queued = await self.store.count_queued(card.id)
        if queued >= card.deployment.max_queue:
            raise OverloadedError(
                f"The model '{card.id}' has {queued} video jobs waiting (its limit). Retry later.",
                headers={"Retry-After": "30"},
            )

    def _card(self, model: str | None) -> ModelCard:
        """The card for ``model`` (routing, aliases, key permissions); no model means ``auto``."""
        return self._cards(model)[0]

    def _cards(self, model: str | None) -> list[ModelCard]:
        """The route's cards for ``model``, in order; the headers name the first (it takes the job)."""
        route = self.state.router.route(model or AUTO, Needs("video-generation"))
        headers = current().headers  # which model takes the job, and why
        headers["x-mmserve-model"], headers["x-mmserve-route"] = route.cards[0].id, route.reason
        return route.cards if route.routed else route.cards[:1]

    async def _reference(self, card: ModelCard, inp: CreateInput, spec: ClipSpec) -> Image | None:
        ref = inp.body.input_reference
        if inp.upload is None and ref is None:
            return None
        if not card.capabilities.image_to_video:
            raise ModelCapabilityError(
                f"The model '{card.id}' makes videos from text only and takes no input_reference image. "
                "GET /v1/models?task=video-generation&capability=image_to_video lists models that do.",
                param="input_reference",
            )
        side = max(spec.width, spec.height)
        media = self.state.media
        if inp.upload is not None:
            return await media.decode(
                inp.upload, media.limits_for(card.limits), param="input_reference", target_side=side
            )
        assert ref is not None
        if ref.file_id is not None:
            raise InvalidRequestError(
                'input_reference.file_id is not supported: upload the image as a file, or send {"image_url": ...}.',
                param="input_reference.file_id",
            )
        if not ref.image_url:
            raise InvalidRequestError("input_reference needs 'image_url'.", param="input_reference.image_url")
        return await media.load_image(
            ImageRef(ref.image_url, param="input_reference.image_url"), card.limits, model=card.id, target_side=side
        )

    def _save_reference(self, job_id: str, image: Image, owner: str | None) -> str:
        buf = io.BytesIO()
        image.save(buf, "PNG")
        meta = ArtifactMeta(
            "image/png", filename=f"{job_id}-reference.png", ttl_s=REFERENCE_TTL_S, owner=owner, kind="video-reference"
        )
        return self.state.artifacts.put_bytes(buf.getvalue(), meta).id

    # ------------------------------------------------------------------ read / list / delete

    async def get(self, video_id: str, *, owner: str | None) -> VideoJob:
        job = await self.store.get(video_id, owner=owner)
        if job is None:
            raise NotFoundError(f"No video with id '{clip(video_id)}'.", param="video_id", code="video_not_found")
        return job

    async def page(
        self, *, owner: str | None, after: str | None, limit: int, order: Literal["asc", "desc"]
    ) -> tuple[list[VideoJob], bool]:
        page = await self.store.page(owner=owner, after=after, limit=limit, order=order)
        if page is None:
            raise InvalidRequestError(
                f"'after' names no video of yours: '{clip(after)}'.", param="after", code="unknown_cursor"
            )
        return page

    async def delete(self, video_id: str, *, owner: str | None) -> str:
        job = await self.store.delete(video_id, owner=owner)
        if job is None:
            raise NotFoundError(f"No video with id '{clip(video_id)}'.", param="video_id", code="video_not_found")
        self.state.jobs.cancel(job.id)  # a running job stops at its next step and drops what it made
        artifacts = self.state.artifacts
        await asyncio.to_thread(lambda: [artifacts.delete(a) for a in job.artifacts])
        return job.id

    # ------------------------------------------------------------------ files

    async def content(self, video_id: str, variant: Variant, *, owner: str | None) -> tuple[Path, str, str]:
        """The file of a completed job: ``(path, content type, download name)``."""
        job = await self.get(video_id, owner=owner)
        if job.status != "completed":
            detail = f": {job.error_message}" if job.status == "failed" else f" ({job.progress}% done); poll it"
            raise InvalidRequestError(
                f"The video '{clip(video_id)}' is {job.status}{detail}.",
                param="video_id",
                code="video_failed" if job.status == "failed" else "video_not_ready",
            )
        aid = {"video": job.video_artifact, "thumbnail": job.thumbnail_artifact}.get(variant, job.spritesheet_artifact)
        if aid is None:
            raise NotFoundError(f"The video '{clip(video_id)}' has no {variant}.", param="variant")
        art, path = await asyncio.to_thread(self.state.artifacts.get, aid)
        return path, art.content_type, art.filename

    def signed_urls(self, job: VideoJob, base_url: str) -> dict[str, str] | None:
        """Signed links to a completed job's files (DO's ``output``), valid until the files expire."""
        if job.status != "completed" or not job.video_artifact:
            return None
        ttl = self.state.settings.url_ttl_s
        if job.expires_at is not None:
            ttl = max(1.0, min(ttl, job.expires_at - time.time()))
        signer = self.state.signer
        links = {"url": job.video_artifact, "thumbnail_url": job.thumbnail_artifact}
        return {k: f"{base_url}/v1/artifacts/{aid}?{signer.query(aid, ttl)}" for k, aid in links.items() if aid}


def clip_spec(card: ModelCard, body: VideoCreateRequest, runtime: Runtime) -> ClipSpec:
    """Size, seconds and fps for this card, refused with a 400 naming the field when it can't make them."""
    caps, limits = card.capabilities, card.limits
    (default_w, default_h), default_fps = runtime.video_defaults(card)
    default_size = f"{default_w}x{default_h}"
    size = body.size if body.size is not None else (caps.sizes[0] if caps.sizes else default_size)
    match = _SIZE.match(size)
    if not match:
        raise InvalidRequestError(
            f"size must look like '1280x720', not '{clip(size)}'.", param="size", code="invalid_size"
        )
    width, height = int(match[1]), int(match[2])
    if caps.sizes and f"{width}x{height}" not in caps.sizes:
        raise InvalidRequestError(
            f"The model '{card.id}' cannot make {width}x{height} videos. Sizes it makes: {', '.join(caps.sizes)}.",
            param="size",
            code="invalid_size",
        )
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise InvalidRequestError(
            f"size {width}x{height}: width and height must be even numbers (H.264 4:2:0).", param="size"
        )
    if limits.max_image_pixels and width * height > limits.max_image_pixels:
        raise InvalidRequestError(
            f"size {width}x{height} is more than the model's {limits.max_image_pixels} pixels per frame.", param="size"
        )
    seconds = _seconds(card, body.seconds)
    fps = body.fps if body.fps is not None else (default_fps if not caps.fps else caps.fps[0])
    if caps.fps and fps not in caps.fps:
        allowed = ", ".join(str(f) for f in caps.fps)
        raise InvalidRequestError(
            f"The model '{card.id}' makes videos at {allowed} fps, not {fps}.", param="fps", code="invalid_fps"
        )
    spec = ClipSpec(width, height, seconds, fps)
    request = VideoGenInput(prompt=body.prompt, width=width, height=height, num_frames=spec.num_frames, fps=fps)
    runtime.check_request(card, request)
    return spec


def _seconds(card: ModelCard, raw: str | float | None) -> float:
    caps, limits = card.capabilities, card.limits
    if raw is None:
        return caps.durations[0] if caps.durations else min(4.0, limits.max_video_seconds)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidRequestError(
            f"seconds must be a positive number like \"4\", not '{clip(raw)}'.",
            param="seconds",
            code="invalid_duration",
        )
    if caps.durations and not any(math.isclose(seconds, d) for d in caps.durations):
        allowed = ", ".join(f'"{d:g}"' for d in caps.durations)
        raise InvalidRequestError(
            f"The model '{card.id}' makes clips of {allowed} seconds, not {seconds:g}.",
            param="seconds",
            code="invalid_duration",
        )
    if seconds > limits.max_video_seconds:
        raise InvalidRequestError(
            f"{seconds:g} seconds is longer than the model's limit of {limits.max_video_seconds:g} seconds.",
            param="seconds",
            code="invalid_duration",
        )
    return seconds
