"""Image generations and edits: validate against the card, run the engine, encode, store, answer.

The service returns an :class:`ImagesResult`: the OpenAI response body plus the plain
figures metering needs (the model and how many images were made).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pybase64
from pydantic import ValidationError

from mmserve.api.errors import validation_error
from mmserve.api.images.multipart import EditForm
from mmserve.api.images.protocol import (
    ImageEditJSONRequest,
    ImageEditRequest,
    ImageGenerationRequest,
    ImageVariationRequest,
    _ImageRequest,
)
from mmserve.api.images.sizes import SizeRules, parse_size
from mmserve.api.images.sources import EditSources, decode_sources
from mmserve.api.images.streaming import StreamShape, sse, start_run
from mmserve.api.jsonbody import FORM
from mmserve.api.state import AppState
from mmserve.api.streaming import Stream
from mmserve.cards import ModelCard
from mmserve.control.context import principal
from mmserve.control.metering import cost_value
from mmserve.control.routing import AUTO, Needs
from mmserve.engines.base import ImageEngine
from mmserve.engines.types import ImageGenInput, ImageGenOutput
from mmserve.errors import InvalidRequestError, ModelCapabilityError
from mmserve.media.image.encode import ALPHA_FORMATS, CONTENT_TYPES, EXTENSIONS, OutputFormat, encode_images
from mmserve.media.image.ingest import ImageRef
from mmserve.storage.artifacts import ArtifactMeta

TASK = "image-generation"
DEFAULT_RESPONSE_FORMAT = "b64_json"
QUALITY = {"standard": "medium", "hd": "high"}  # DALL-E 3's names -> the quality levels


@dataclass
class ImagesResult:
    model: str
    images: int  # images generated: what per-image pricing meters
    usage: dict[str, Any]
    body: dict[str, Any]  # the response body; with b64_json answers, ``data`` is in ``b64`` instead
    b64: list[bytes] | None = None  # each image's base64 (ASCII bytes): ``data: [{b64_json}]``

    def json_bytes(self) -> bytes:
        """The response body as JSON, base64 images spliced in as they are.

        Written by hand, with a reason: base64 needs no JSON escaping, and a generic encoder
        would scan and copy each image's megabytes two or three times (str, escaping, UTF-8)
        on the event loop; here they are copied once, into the body.
        """
        head = json.dumps(self.body, separators=(",", ":")).encode()
        if self.b64 is None:
            return head
        parts = [head[:-1], b',"data":[' if len(head) > 2 else b'"data":[']
        for i, blob in enumerate(self.b64):
            parts += [b',{"b64_json":"' if i else b'{"b64_json":"', blob, b'"}']
        parts.append(b"]}")
        return b"".join(parts)


@dataclass
class _Output:
    fmt: OutputFormat
    compression: int | None
    response_format: str
    stream: bool = False


class ImagesService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    # ------------------------------------------------------------------ entry points

    async def generate(self, req: ImageGenerationRequest, base_url: str) -> ImagesResult | Stream:
        return await self._serve(req, lambda card: self._generate(req, card, base_url))

    async def _generate(self, req: ImageGenerationRequest, card: ModelCard, base_url: str) -> ImagesResult | Stream:
        out = self._check_common(req, card)
        rules = SizeRules.for_card(card, self.state.settings.limits)
        size = parse_size(req.size)
        width, height = rules.check(*size) if size else rules.default()
        inp = self._input(req, width, height, out)
        self.state.runtime.check_request(card, inp)
        return await self._run_or_stream(card, inp, out, base_url, "images.generations")

    async def edit(self, form: EditForm, base_url: str) -> ImagesResult | Stream:
        """A multipart edit (the SDK's ``images.edit``)."""
        try:
            req = ImageEditRequest.model_validate(form.fields, context=FORM)
        except ValidationError as e:
            raise validation_error(e.errors()) from None
        sources = EditSources.from_form(form)
        return await self._serve(req, lambda card: self._edit(req, sources, card, base_url, "images.edits"), edits=True)

    async def edit_json(self, raw: Any, base_url: str) -> ImagesResult | Stream:
        """A JSON edit: ``images: [{image_url}]``, ``mask: {image_url}`` (the current OpenAI API)."""
        try:
            req = ImageEditJSONRequest.model_validate(raw)
        except ValidationError as e:
            raise validation_error(e.errors()) from None
        sources = EditSources.from_json(req)
        return await self._serve(req, lambda card: self._edit(req, sources, card, base_url, "images.edits"), edits=True)

    async def variation(self, form: EditForm, base_url: str) -> ImagesResult | Stream:
        """``images/variations``: image-to-image from the one uploaded image with an empty prompt."""
        try:
            var = ImageVariationRequest.model_validate(form.fields, context=FORM)
        except ValidationError as e:
            raise validation_error(e.errors()) from None
        if form.mask is not None:
            raise InvalidRequestError("Variations take no mask; use /v1/images/edits to repaint an area.", param="mask")
        if len(form.images) > 1:
            raise InvalidRequestError("A variation is made from one image; send one 'image' file.", param="image")
        req = var.as_edit()
        sources = EditSources(list(form.images), inpaint_transparency=False)
        return await self._serve(
            req, lambda card: self._edit(req, sources, card, base_url, "images.variations"), edits=True
        )

    async def _edit(
        self, req: ImageEditRequest, sources: EditSources, card: ModelCard, base_url: str, endpoint: str
    ) -> ImagesResult | Stream:
        if not card.capabilities.edits:
            what = "make variations of" if endpoint == "images.variations" else "edit"
            raise ModelCapabilityError(
                f"The model '{card.id}' does not {what} images (its card has capabilities.edits: false; variations "
                "are image-to-image). GET /v1/models?task=image-generation&capability=edits lists the models that do.",
                param="model",
            )
        out = self._check_common(req, card)
        if not sources.images:
            raise InvalidRequestError(
                "'image' is required: upload the image to edit as a file part named 'image' (or 'image[]').",
                param="image",
            )
        limit = min(card.capabilities.max_images, self.state.settings.limits.max_images_per_request)
        if len(sources.images) > limit:
            raise InvalidRequestError(
                f"{len(sources.images)} images were sent; the model '{card.id}' takes at most {limit}.",
                param="images" if isinstance(sources.images[0], ImageRef) else "image",
                code="model_limit",
            )
        images, mask = await decode_sources(self.state, card, sources)
        rules = SizeRules.for_card(card, self.state.settings.limits)
        size = parse_size(req.size)
        width, height = rules.check(*size) if size else rules.check(*rules.for_input(*images[0].size))
        inp = self._input(req, width, height, out)
        inp.images, inp.mask, inp.strength = images, mask, req.strength
        self.state.runtime.check_request(card, inp)
        return await self._run_or_stream(card, inp, out, base_url, endpoint)

    # ------------------------------------------------------------------ steps

    async def _serve(
        self,
        req: _ImageRequest,
        attempt: Callable[[ModelCard], Awaitable[ImagesResult | Stream]],
        *,
        edits: bool = False,
    ) -> ImagesResult | Stream:
        """Run ``attempt`` on the cards for ``req.model`` (routing, fallback); no model means ``auto``."""
        return await self.state.router.serve(req.model or AUTO, Needs(TASK, units=req.n or 1, edits=edits), attempt)

    def _check_common(self, req: _ImageRequest, card: ModelCard) -> _Output:
        max_n = min(card.limits.max_n, self.state.settings.limits.max_n)
        n = req.n or 1
        if n > max_n:
            raise InvalidRequestError(
                f"n is {n}; the model '{card.id}' makes at most {max_n} images per request.",
                param="n",
                code="model_limit",
            )
        fmt: OutputFormat = req.output_format or "png"
        if req.background == "transparent" and fmt not in ALPHA_FORMATS:
            raise InvalidRequestError(
                f"A transparent background needs an output format with an alpha channel; '{fmt}' has none. "
                "Use output_format 'png' or 'webp'.",
                param="background",
            )
        # output_compression with PNG: OpenAI accepts and ignores it (PNG is lossless); so do we.
        return _Output(fmt, req.output_compression, req.response_format or DEFAULT_RESPONSE_FORMAT, bool(req.stream))

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
            partial_images=(req.partial_images or 0) if req.stream else 0,
        )

    async def _run_or_stream(
        self, card: ModelCard, inp: ImageGenInput, out: _Output, base_url: str, endpoint: str
    ) -> ImagesResult | Stream:
        size = (inp.width, inp.height)
        if not out.stream:
            result = await self._run(card, inp)
            return await self._respond(card, result, out, base_url, size, endpoint)
        prefix = "image_generation" if endpoint == "images.generations" else "image_edit"
        shape = StreamShape(prefix, out.fmt, out.compression, f"{size[0]}x{size[1]}", inp.quality or "auto")
        run = await start_run(card, self.state.runtime.deployment(card).acquire(), inp, shape)

        async def finish(result: ImageGenOutput) -> dict[str, Any]:
            return self._meter(card, result, result.count, endpoint)

        return sse(run, finish)

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
        as_url = out.response_format == "url"
        files = result.encoded  # a provider's files, already checked to be this format, pass as they are
        if files is not None:
            if as_url:
                encoded = files
            elif sum(map(len, files)) <= INLINE_B64_BYTES:
                encoded = _b64_all(files)
            else:
                encoded = await asyncio.to_thread(_b64_all, files)
        else:  # every image encoded (and base64-encoded) in its own worker thread, side by side
            encoded = await encode_images(result.images, out.fmt, compression=out.compression, b64=not as_url)
        count = len(encoded)
        usage = self._meter(card, result, count, endpoint)
        body: dict[str, Any] = {"created": int(time.time())}
        if as_url:
            body["data"] = [{"url": url} for url in await asyncio.to_thread(self._store, encoded, out.fmt, base_url)]
        body |= {
            "background": "opaque",
            "output_format": out.fmt,
            "size": f"{size[0]}x{size[1]}",
            "usage": usage,
        }
        if result.quality:
            body["quality"] = result.quality
        return ImagesResult(model=card.id, images=count, usage=usage, body=body, b64=None if as_url else encoded)

    def _meter(self, card: ModelCard, result: ImageGenOutput, count: int, endpoint: str) -> dict[str, Any]:
        """Record the request's usage; returns it in OpenAI's shape."""
        tokens, output_tokens = result.prompt_tokens, result.output_tokens  # output: a provider's image tokens
        event = self.state.meter.record(card, endpoint, images=count, input_tokens=tokens, output_tokens=output_tokens)
        return {
            "input_tokens": tokens,
            "input_tokens_details": {"text_tokens": tokens, "image_tokens": 0},
            "output_tokens": output_tokens,
            "total_tokens": tokens + output_tokens,
            "images": count,
            "cost": cost_value(event.cost),  # mmserve's extension: USD from the card's prices, as metered
        }

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


# A provider's files up to this size are base64-encoded on the loop (pybase64: ~25 µs for 1 MiB
# with AVX-512 here, a few times that with AVX2 only), about the cost of the hand-off to a worker
# thread and back (~55 µs of CPU on an idle 2-core machine, more when busy); larger ones in a
# thread, so that the loop serves other requests meanwhile.
INLINE_B64_BYTES = 1024 * 1024


def _b64_all(files: list[bytes]) -> list[bytes]:
    return [pybase64.b64encode(f) for f in files]
