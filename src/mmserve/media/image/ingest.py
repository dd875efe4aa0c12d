"""The one entry point endpoints use for user-supplied images: URL or data URI -> bounded RGB image.

On the event loop only the cheap checks run (the data URI's shape and length, the card's
URL policy); fetching is async and SSRF-safe (:mod:`mmserve.media.net.fetch`); base64 decoding
and image decoding run in a decode worker (:mod:`mmserve.media.decoder`) with a time limit.

``detail`` (OpenAI's image_url.detail): ``low`` caps the long side at
``Settings.limits.low_detail_side`` (512); ``high`` keeps what the model's processor uses
(its input size, see :class:`~mmserve.media.image.decode.ImageInputSize`); ``auto`` decides from
the size: an image already within the low-detail side is kept as it is, a larger one is
treated as ``high``. Nothing is ever upscaled, and the aspect ratio is always kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from PIL.Image import Image

from mmserve.errors import InvalidRequestError, MediaFetchError
from mmserve.media.budget import ImageBudget
from mmserve.media.datauri import split_data_uri
from mmserve.media.decodejob import DecodeJob
from mmserve.media.decoder import Decoder, make_decoder
from mmserve.media.image.decode import SOURCE_PIXELS, ImageInputSize, ImageLimits, check_bytes
from mmserve.media.net.fetch import SafeFetcher
from mmserve.settings import Settings

_GENERIC_MIMES = {"application/octet-stream", "binary/octet-stream"}


class CardImageLimits(Protocol):
    """What the media layer reads of a model card's limits (``cards.Limits`` has all of it).

    The media layer sits below the catalog: it takes these values, never a card.
    """

    @property
    def image_formats(self) -> Sequence[str]: ...
    @property
    def max_image_side(self) -> int | None: ...
    @property
    def max_image_pixels(self) -> int | None: ...
    @property
    def min_image_side(self) -> int | None: ...
    @property
    def allow_image_urls(self) -> bool: ...
    @property
    def max_request_image_bytes(self) -> int | None: ...
    @property
    def max_request_image_pixels(self) -> int | None: ...


@dataclass
class ImageRef:
    url: str
    detail: str = "auto"
    param: str = "image_url"


class MediaIngestor:
    def __init__(self, settings: Settings, fetcher: SafeFetcher | None = None, decoder: Decoder | None = None) -> None:
        self.settings = settings
        self.fetcher = fetcher or SafeFetcher(settings.fetch)
        lim = settings.limits
        self.decoder = decoder or make_decoder(
            lim.decode_isolation,
            concurrency=lim.max_decode_concurrency,
            timeout_s=lim.decode_timeout_s,
            memory_mb=lim.decode_memory_mb,
        )

    def limits_for(self, card: CardImageLimits) -> ImageLimits:
        """The server's limits tightened by the card's."""
        lim = self.settings.limits
        side = min(card.max_image_side or lim.max_image_side, lim.max_image_side)
        pixels = min(card.max_image_pixels or lim.max_image_pixels, lim.max_image_pixels)
        return ImageLimits(
            formats=tuple(card.image_formats),
            max_side=side,
            min_side=max(card.min_image_side or 1, lim.min_image_side),
            max_pixels=pixels,
            max_bytes=lim.max_data_uri_bytes,
            max_aspect_ratio=lim.max_aspect_ratio,
        )

    def budget_for(self, card: CardImageLimits) -> ImageBudget:
        """A fresh request-wide total for the images of one request (the server's, tightened by the card)."""
        lim = self.settings.limits
        return ImageBudget(
            max_bytes=min(card.max_request_image_bytes or lim.max_request_image_bytes, lim.max_request_image_bytes),
            max_pixels=min(card.max_request_image_pixels or lim.max_request_image_pixels, lim.max_request_image_pixels),
        )

    def side_for_detail(self, detail: str, target_side: int | None = None) -> int | None:
        """The longest side allowed for ``detail`` (None: only the model's input size bounds it)."""
        if detail == "low":
            low = self.settings.limits.low_detail_side
            return min(low, target_side) if target_side else low
        return target_side

    async def load_image(
        self,
        ref: ImageRef,
        card: CardImageLimits,
        *,
        model: str,
        target_side: int | None = None,
        input_size: ImageInputSize | None = None,
        keep_alpha: bool = False,
        budget: ImageBudget | None = None,
    ) -> Image:
        """An ``image_url`` (data URI or http(s) URL) -> an 8-bit RGB image within the card's limits.

        ``model`` names the card in messages; ``keep_alpha``: RGBA, transparency kept (edits).
        ``budget``: the request's totals, shared by all its images (:meth:`load_images` makes
        one); without it, this image gets a fresh one.
        """
        url = ref.url.strip()
        param = ref.param
        limits = self.limits_for(card)
        budget = budget if budget is not None else self.budget_for(card)
        side = self.side_for_detail(ref.detail, target_side)
        lowered = url[:8].lower()
        if lowered.startswith("data:"):
            encoded = split_data_uri(url, param=param, max_bytes=limits.max_bytes)
            mime = encoded.mime
            if mime is not None and not mime.startswith("image/") and mime not in _GENERIC_MIMES:
                raise InvalidRequestError(
                    f"The data URI has type '{mime[:64]}', not an image. Send data:image/png, jpeg or webp.",
                    param=param,
                    code="invalid_image_url",
                )
            budget.charge_bytes(encoded.payload_length * 3 // 4, param=param)  # its size once decoded
            job = DecodeJob(
                encoded.ascii_payload(),
                _within(limits, budget),
                param,
                base64=True,
                target_side=side,
                input_size=input_size,
                keep_alpha=keep_alpha,
            )
            return _charged(await self.decoder.decode(job), budget, param)
        if lowered.startswith(("http://", "https://")):
            if not card.allow_image_urls:
                raise MediaFetchError(
                    f"The model '{model}' does not accept image links; send the image base64-encoded "
                    "as a data URI ('data:image/png;base64,...').",
                    param=param,
                    code="image_urls_disabled",
                )
            fetched = await self.fetcher.fetch(url, param=param, max_bytes=limits.max_bytes, budget=budget)
            return await self.decode(
                fetched.data,
                limits,
                param=param,
                target_side=side,
                input_size=input_size,
                keep_alpha=keep_alpha,
                budget=budget,
                paid=True,
            )
        message = "The image URL must be an http(s) URL or a data URI." if url else "The image URL is empty."
        raise InvalidRequestError(
            f"{message} Send an http(s) URL or a data URI like 'data:image/png;base64,...'.",
            param=param,
            code="invalid_image_url",
        )

    async def load_images(
        self,
        refs: Sequence[ImageRef],
        card: CardImageLimits,
        *,
        model: str,
        input_size: ImageInputSize | None = None,
    ) -> list[Image]:
        """Several images at once, within one request-wide budget; the first failure cancels the
        others' fetches and decodes."""
        if not refs:
            return []
        budget = self.budget_for(card)
        if len(refs) == 1:  # no task: it would cost a turn of the event loop (see api/chat/media.py)
            return [await self.load_image(refs[0], card, model=model, input_size=input_size, budget=budget)]
        tasks = [
            asyncio.ensure_future(self.load_image(r, card, model=model, input_size=input_size, budget=budget))
            for r in refs
        ]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            pending = [t for t in tasks if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def decode(
        self,
        data: bytes,
        limits: ImageLimits,
        *,
        param: str,
        target_side: int | None,
        input_size: ImageInputSize | None = None,
        keep_alpha: bool = False,
        budget: ImageBudget | None = None,
        paid: bool = False,
    ) -> Image:
        """Raw image bytes (an upload, a fetched URL) -> an 8-bit RGB image within ``limits``.

        ``keep_alpha``: RGBA instead, transparency kept (an edit mask is its alpha channel).
        ``budget``: the request's totals, charged with these bytes (unless ``paid``: a fetch
        charged them as they arrived) and with the image's pixels.
        """
        if budget is not None and not paid:
            budget.charge_bytes(len(data), param=param)
        check_bytes(data, limits, param=param)  # cheap refusals never occupy a decode worker
        within = _within(limits, budget) if budget is not None else limits
        job = DecodeJob(data, within, param, target_side=target_side, input_size=input_size, keep_alpha=keep_alpha)
        image = _image(await self.decoder.decode(job))
        return _charged(image, budget, param) if budget is not None else image

    async def aclose(self) -> None:
        """Stop the decode workers (the app's lifespan calls this on shutdown)."""
        await self.decoder.aclose()


def _within(limits: ImageLimits, budget: ImageBudget) -> ImageLimits:
    """``limits`` for one decode that may use only what the request's other images left."""
    return replace(limits, max_pixels_left=budget.pixels_left, request_max_pixels=budget.max_pixels)


def _charged(result: object, budget: ImageBudget, param: str) -> Image:
    image = _image(result)
    budget.charge_pixels(int(image.info.get(SOURCE_PIXELS, image.width * image.height)), param=param)
    return image


def _image(result: object) -> Image:
    assert isinstance(result, Image), "an image job decodes to an image"
    return result
