"""Embeddings: read the inputs, route to an embedding card, ingest images, embed, encode, meter.

Images go through the media layer like chat images (SSRF-safe fetching, decoding in the
isolated workers, every bound of the card), before a model slot is taken. Usage bills text
tokens (``pricing.input_per_1m_tokens``) and images (``pricing.per_image``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

import pybase64

from mmserve.api.embeddings.protocol import BareImageItem, EmbeddingRequest, ImageItem, TextItem
from mmserve.api.state import AppState
from mmserve.cards import ModelCard
from mmserve.control.routing import Needs
from mmserve.engines.base import EmbeddingEngine, card_image_input_size
from mmserve.engines.types import EmbeddingInput, EmbeddingItem, EmbeddingOutput
from mmserve.errors import InvalidRequestError, ModelCapabilityError
from mmserve.media.image.decode import ImageInputSize
from mmserve.media.image.ingest import ImageRef

ENDPOINT = "embeddings"
CHARS_PER_TOKEN = 4  # a rough estimate for routing and cost, before any tokenizer runs
# Encoding a large answer as JSON floats takes a while: above this many values, off the event loop.
_OFFLOAD_VALUES = 200_000


@dataclass
class _Inputs:
    """The request's inputs in order: text / token items, and the images to ingest (by item index)."""

    items: list[EmbeddingItem] = field(default_factory=list)
    images: dict[int, ImageRef] = field(default_factory=dict)

    @property
    def estimated_tokens(self) -> list[int]:
        out = []
        for item in self.items:
            if item.tokens is not None:
                out.append(len(item.tokens))
            elif item.text is not None:
                out.append(len(item.text) // CHARS_PER_TOKEN + 1)
        return out


class EmbeddingService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def create(self, req: EmbeddingRequest) -> dict[str, Any]:
        inputs = read_inputs(req)
        tokens = inputs.estimated_tokens
        needs = Needs(
            "embedding",
            images=len(inputs.images),
            prompt_tokens=max(tokens, default=0),
            units=float(sum(tokens)),
            dimensions=req.dimensions,
        )
        return await self.state.router.serve(req.model, needs, lambda card: self._embed(req, inputs, card))

    async def _embed(self, req: EmbeddingRequest, inputs: _Inputs, card: ModelCard) -> dict[str, Any]:
        self._check(req, inputs, card)
        dep = self.state.runtime.deployment(card)
        refs = list(inputs.images.values())
        images = await self.state.media.load_images(
            refs, card.limits, model=card.id, input_size=self._image_input_size(card) if refs else None
        )
        items = list(inputs.items)
        for index, image in zip(inputs.images, images, strict=True):
            items[index] = replace(items[index], image=image)
        async with dep.acquire() as engine:
            assert isinstance(engine, EmbeddingEngine)
            dimensions = _dimensions(req.dimensions, card, engine.dimensions())
            out = await engine.embed(EmbeddingInput(items, dimensions))
        self.state.meter.record(card, ENDPOINT, input_tokens=out.text_tokens, images=out.images)
        if out.vectors.size > _OFFLOAD_VALUES:
            return await asyncio.to_thread(_response, req, card, out)
        return _response(req, card, out)

    def _check(self, req: EmbeddingRequest, inputs: _Inputs, card: ModelCard) -> None:
        count = len(inputs.items)
        if count > card.limits.max_inputs:
            raise InvalidRequestError(
                f"The request has {count} inputs; the model '{card.id}' takes at most {card.limits.max_inputs}.",
                param="input",
                code="model_limit",
            )
        if inputs.images and not card.capabilities.vision:
            raise ModelCapabilityError(
                f"The model '{card.id}' embeds text only (its card has capabilities.vision set to false). "
                "Remove the images or use a model that embeds images "
                "(GET /v1/models?task=embedding&capability=vision).",
                param=next(iter(inputs.images.values())).param,
            )
        max_images = min(card.capabilities.max_images, self.state.settings.limits.max_images_per_request)
        if len(inputs.images) > max_images:
            raise InvalidRequestError(
                f"The request has {len(inputs.images)} images; the model '{card.id}' takes at most {max_images}.",
                param="input",
                code="too_many_images",
            )
        caps = card.capabilities
        if caps.matryoshka or caps.embedding_dimensions is not None:  # else: known once the model is loaded
            _dimensions(req.dimensions, card, None)

    def _image_input_size(self, card: ModelCard) -> ImageInputSize | None:
        engine = self.state.runtime.deployment(card).engine
        if isinstance(engine, EmbeddingEngine):
            return engine.image_input_size()
        return card_image_input_size(card)


def read_inputs(req: EmbeddingRequest) -> _Inputs:
    """The request's ``input`` as engine items (images still to be fetched and decoded)."""
    raw = req.input
    single = isinstance(raw, str) or all(isinstance(v, int) for v in raw)  # a text, or one tokenized text
    values: list[Any] = [raw] if single else list(raw)
    out = _Inputs()
    for i, value in enumerate(values):
        param = "input" if single else f"input[{i}]"
        if isinstance(value, str | TextItem):
            text = value if isinstance(value, str) else value.text
            if not text:
                raise InvalidRequestError("An input must not be an empty string.", param=param)
            out.items.append(EmbeddingItem(text=text, param=param))
        elif isinstance(value, list):
            if not value:
                raise InvalidRequestError("A list of token ids must not be empty.", param=param)
            out.items.append(EmbeddingItem(tokens=list(value), param=param))
        else:
            if isinstance(value, ImageItem):
                ref = ImageRef(value.image_url.url, value.image_url.detail, f"{param}.image_url")
            else:
                assert isinstance(value, BareImageItem)
                ref = ImageRef(value.image, "auto", f"{param}.image")
            out.images[len(out.items)] = ref
            out.items.append(EmbeddingItem(param=ref.param))
    return out


def _dimensions(requested: int | None, card: ModelCard, native: int | None) -> int | None:
    """The length to cut vectors to (None: the model's own); a 400 when the card does not allow it."""
    native = native or card.capabilities.embedding_dimensions
    if requested is None or requested == native:
        return None
    if not card.capabilities.matryoshka:
        size = f" ({native})" if native else ""
        raise InvalidRequestError(
            f"The model '{card.id}' makes vectors of one length{size} only: it was not trained to be shortened "
            "(its card does not set capabilities.matryoshka). Leave out 'dimensions'.",
            param="dimensions",
            code="unsupported_dimensions",
        )
    if native is not None and requested > native:
        raise InvalidRequestError(
            f"dimensions is {requested}; the model '{card.id}' makes vectors of {native} values. "
            f"Ask for at most {native}.",
            param="dimensions",
            code="unsupported_dimensions",
        )
    return requested


def _response(req: EmbeddingRequest, card: ModelCard, out: EmbeddingOutput) -> dict[str, Any]:
    if req.encoding_format == "base64":  # little-endian float32, as OpenAI's (and the SDK decodes)
        rows: list[Any] = [pybase64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in out.vectors]
    else:
        rows = out.vectors.tolist()
    usage: dict[str, Any] = {"prompt_tokens": out.text_tokens, "total_tokens": out.text_tokens}
    if out.images:
        usage["images"] = out.images
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)],
        "model": card.id,
        "usage": usage,
    }
