"""Image generations and edits: validate against the card, run the engine, encode, store, answer.

The service returns an :class:`ImagesResult`: the OpenAI response body plus the plain
figures metering needs (the model and how many images were made).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from PIL.Image import Image
from pydantic import ValidationError

from mmserve.api.errors import validation_error
from mmserve.api.images.multipart import EditForm
from mmserve.api.images.protocol import ImageEditRequest, ImageGenerationRequest, _ImageRequest
from mmserve.api.images.sizes import SizeRules, parse_size
from mmserve.api.state import AppState
from mmserve.cards import ModelCard
from mmserve.control.context import principal
from mmserve.control.routing import AUTO, Needs
from mmserve.engines.base import ImageEngine
from mmserve.engines.types import ImageGenInput, ImageGenOutput
from mmserve.errors import InvalidRequestError, ModelCapabilityError
from mmserve.media.image.decode import flatten_alpha
from mmserve.media.image.encode import ALPHA_FORMATS, CONTENT_TYPES, EXTENSIONS, OutputFormat, encode_images
from mmserve.media.image.masks import mask_from_image, transparency_mask
from mmserve.storage.artifacts import ArtifactMeta

TASK = "image-generation"
DEFAULT_RESPONSE_FORMAT = "b64_json"
QUALITY = {"standard": "medium", "hd": "high"}  # DALL-E 3's names -> the quality levels


@dataclass
class ImagesResult:
    model: str
    images: int  # images generated: what per-image pricing meters
    usage: dict[str, Any]
    body: dict[str, Any]


@dataclass
class _Output:
    fmt: OutputFormat
    compression: int | None
    response_format: str


class ImagesService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    # ------------------------------------------------------------------ entry points

    async def generate(self, req: ImageGenerationRequest, base_url: str) -> ImagesResult:
        return await self._serve(req, lambda card: self._generate(req, card, base_url))

    async def _generate(self, req: ImageGenerationRequest, card: ModelCard, base_url: str) -> ImagesResult:
        out = self._check_common(req, card)
        rules = SizeRules.for_card(card, self.state.settings.limits)
        size = parse_size(req.size)
        width, height = rules.check(*size) if size else rules.default()
        inp = self._input(req, width, height, out)
        self.state.runtime.check_request(card, inp)
        result = await self._run(card, inp)
        return await self._respond(card, result, out, base_url, (width, height), "images.generations")

    async def edit(self, form: EditForm, base_url: str) -> ImagesResult:
        try:
            req = ImageEditRequest.model_validate(form.fields)
        except ValidationError as e:
            raise validation_error(e.errors()) from None
        return await self._serve(req, lambda card: self._edit(req, form, card, base_url), edits=True)

    async def _edit(self, req: ImageEditRequest, form: EditForm, card: ModelCard, base_url: str) -> ImagesResult:
        if not card.capabilities.edits:
            raise ModelCapabilityError(
                f"The model '{card.id}' does not edit images (its card has capabilities.edits: false). "
                "GET /v1/models?task=image-generation&capability=edits lists the models that do.",
                param="model",
            )
        out = self._check_common(req, card)
        if not form.images:
            raise InvalidRequestError(
                "'image' is required: upload the image to edit as a file part named 'image' (or 'image[]').",
                param="image",
            )
        limit = min(card.capabilities.max_images, self.state.settings.limits.max_images_per_request)
        if len(form.images) > limit:
            raise InvalidRequestError(
                f"{len(form.images)} images were sent; the model '{card.id}' takes at most {limit}.", param="image"
            )
        media = self.state.media
        limits = media.limits_for(card.limits)
        # OpenAI: without a mask, the one image's transparent pixels are the area to edit, so its
        # alpha comes back from the decode worker too
        own_alpha = form.mask is None and len(form.images) == 1
        images: list[Image] = list(
            await asyncio.gather(
                *(
                    media.decode(u.data, limits, param=u.param, target_side=None, keep_alpha=own_alpha)
                    for u in form.images
                )
            )
        )
        mask = None
        if form.mask is not None:
            decoded = await media.decode(form.mask.data, limits, param="mask", target_side=None, keep_alpha=True)
            mask = mask_from_image(decoded)
            if mask.size != images[0].size:
                raise InvalidRequestError(
                    f"The mask is {mask.size[0]}x{mask.size[1]} but the image is {images[0].size[0]}x"
                    f"{images[0].size[1]}; they must be the same size.",
                    param="mask",
                )
        elif own_alpha:
            mask = transparency_mask(images[0])
            images[0] = flatten_alpha(images[0])
        rules = SizeRules.for_card(card, self.state.settings.limits)
        size = parse_size(req.size)
        width, height = rules.check(*size) if size else rules.check(*rules.for_input(*images[0].size))
        inp = self._input(req, width, height, out)
        inp.images, inp.mask, inp.strength = images, mask, req.strength
        self.state.runtime.check_request(card, inp)
        result = await self._run(card, inp)
        return await self._respond(card, result, out, base_url, (width, height), "images.edits")

    # ------------------------------------------------------------------ steps

    async def _serve(
        self, req: _ImageRequest, attempt: Callable[[ModelCard], Awaitable[ImagesResult]], *, edits: bool = False
    ) -> ImagesResult:
        """Run ``attempt`` on the cards for ``req.model`` (routing, fallback); no model means ``auto``."""
        return await self.state.router.serve(req.model or AUTO, Needs(TASK, units=req.n or 1, edits=edits), attempt)

    def _check_common(self, req: _ImageRequest, card: ModelCard) -> _Output:
        if req.stream:
            raise InvalidRequestError(
                "Streaming partial images is not supported; leave 'stream' out (or false) for the finished images.",
                param="stream",
            )
        max_n = min(card.limits.max_n, self.state.settings.limits.max_n)
        n = req.n or 1
        if n > max_n:
            raise InvalidRequestError(
                f"n is {n}; the model '{card.id}' makes at most {max_n} images per request.", param="n"
            )
        fmt: OutputFormat = req.output_format or "png"
        if req.background == "transparent" and fmt not in ALPHA_FORMATS:
            raise InvalidRequestError(
                f"A transparent background needs an output format with an alpha channel; '{fmt}' has none. "
                "Use output_format 'png' or 'webp'.",
                param="background",
            )
        # output_compression with PNG: OpenAI accepts and ignores it (PNG is lossless); so do we.
        return _Output(fmt, req.output_compression, req.response_format or DEFAULT_RESPONSE_FORMAT)

    @staticmethod
    def _input(req: _ImageRequest, width: int, height: int, out: _Output) -> ImageGenInput:
        quality = req.quality or "auto"
        return ImageGenInput(
            prompt=req.prompt,
            n=req.n or 1,
            width=width,
            height=height,
            steps=req.steps,
            guidance_scale=req.guidance_scale,
            negative_prompt=req.negative_prompt,
            seed=req.seed,
            quality=None if quality == "auto" else QUALITY.get(quality, quality),
            transparent_background=req.background == "transparent",
            output_format=out.fmt,
            output_compression=out.compression,
        )

    async def _run(self, card: ModelCard, inp: ImageGenInput) -> ImageGenOutput:
        dep = self.state.runtime.deployment(card)
        async with dep.acquire() as engine:
            assert isinstance(engine, ImageEngine)
            return await engine.generate(inp)

    async def _respond(
        self,
        card: ModelCard,
        result: ImageGenOutput,
        out: _Output,
        base_url: str,
        size: tuple[int, int],
        endpoint: str,
    ) -> ImagesResult:
        encoded = (  # a provider's files, already checked to be this format, pass as they are
            result.encoded
            if result.encoded is not None
            else await encode_images(result.images, out.fmt, compression=out.compression)
        )
        if out.response_format == "url":
            data = [{"url": url} for url in await asyncio.to_thread(self._store, encoded, out.fmt, base_url)]
        else:
            data = [{"b64_json": b64} for b64 in await asyncio.to_thread(lambda: [_b64(b) for b in encoded])]
        count = len(encoded)
        tokens, output_tokens = result.prompt_tokens, result.output_tokens
        self.state.meter.record(card, endpoint, images=count, input_tokens=tokens, output_tokens=output_tokens)
        usage = {
            "input_tokens": tokens,
            "input_tokens_details": {"text_tokens": tokens, "image_tokens": 0},
            "output_tokens": output_tokens,
            "total_tokens": tokens + output_tokens,
            "images": count,
        }
        body: dict[str, Any] = {
            "created": int(time.time()),
            "data": data,
            "background": "opaque",
            "output_format": out.fmt,
            "size": f"{size[0]}x{size[1]}",
            "usage": usage,
        }
        if result.quality:
            body["quality"] = result.quality
        return ImagesResult(model=card.id, images=count, usage=usage, body=body)

    def _store(self, encoded: list[bytes], fmt: OutputFormat, base_url: str) -> list[str]:
        """Keep each image in the artifact store; answer signed, expiring links under ``base_url``."""
        state = self.state
        owner = principal().key_id
        urls = []
        for i, blob in enumerate(encoded):
            art = state.artifacts.put_bytes(
                blob,
                ArtifactMeta(CONTENT_TYPES[fmt], filename=f"image-{i}.{EXTENSIONS[fmt]}", kind="image", owner=owner),
            )
            urls.append(f"{base_url}/v1/artifacts/{art.id}?{state.signer.query(art.id, state.settings.url_ttl_s)}")
        return urls


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
