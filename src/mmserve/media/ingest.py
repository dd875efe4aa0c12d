"""The one entry point endpoints use for user-supplied images: URL or data URI -> bounded RGB image.

Decoding runs in worker threads (never on the event loop), at most
``limits.max_decode_concurrency`` at once, each bounded by ``limits.decode_timeout_s``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from PIL.Image import Image

from mmserve.api.errors import InvalidRequestError, MediaFetchError
from mmserve.catalog.schema import ModelCard
from mmserve.media.datauri import parse_data_uri
from mmserve.media.fetch import SafeFetcher
from mmserve.media.images import ImageLimits, decode_image, sniff_format
from mmserve.settings import Settings

# detail -> the longest side the model gets (None: keep up to the card's maximum)
LOW_DETAIL_SIDE = 512


@dataclass
class ImageRef:
    url: str
    detail: str = "auto"
    param: str = "image_url"


class MediaIngestor:
    def __init__(self, settings: Settings, fetcher: SafeFetcher | None = None) -> None:
        self.settings = settings
        self.fetcher = fetcher or SafeFetcher(settings.fetch)
        self._decode_sem = asyncio.Semaphore(settings.limits.max_decode_concurrency)

    def limits_for(self, card: ModelCard) -> ImageLimits:
        lim = self.settings.limits
        side = min(card.limits.max_image_side or lim.max_image_side, lim.max_image_side)
        pixels = min(card.limits.max_image_pixels or lim.max_image_pixels, lim.max_image_pixels)
        return ImageLimits(
            formats=tuple(card.limits.image_formats),
            max_side=side,
            min_side=lim.min_image_side,
            max_pixels=pixels,
            max_bytes=lim.max_data_uri_bytes,
        )

    async def load_image(self, ref: ImageRef, card: ModelCard, *, target_side: int | None = None) -> Image:
        url = ref.url.strip()
        if not url:
            raise InvalidRequestError(
                "The image URL is empty. Send an http(s) URL or a data URI like 'data:image/png;base64,...'.",
                param=ref.param,
                code="invalid_image_url",
            )
        limits = self.limits_for(card)
        if url[:5].lower() == "data:":
            uri = parse_data_uri(url, param=ref.param, max_bytes=limits.max_bytes)
            if uri.mime is not None and not uri.mime.startswith("image/"):
                raise InvalidRequestError(
                    f"The data URI has type '{uri.mime}', not an image. Send data:image/png, jpeg or webp.",
                    param=ref.param,
                    code="invalid_image_url",
                )
            data = uri.data
        elif url[:7].lower() in ("http://", "https:/"):
            if not card.limits.allow_image_urls:
                raise MediaFetchError(
                    f"The model '{card.id}' does not accept image links; send the image base64-encoded as a data URI.",
                    param=ref.param,
                    code="image_urls_disabled",
                )
            data = (await self.fetcher.fetch(url, param=ref.param, max_bytes=limits.max_bytes)).data
        else:
            raise InvalidRequestError(
                "The image URL must be an http(s) URL or a data URI like 'data:image/png;base64,...'.",
                param=ref.param,
                code="invalid_image_url",
            )
        side = LOW_DETAIL_SIDE if ref.detail == "low" else None
        if target_side:
            side = min(side or target_side, target_side)
        return await self.decode(data, limits, param=ref.param, target_side=side)

    async def decode(self, data: bytes, limits: ImageLimits, *, param: str, target_side: int | None) -> Image:
        # cheap checks on the loop first so bad input never occupies a decode slot
        if not data:
            raise InvalidRequestError("The image is empty (0 bytes).", param=param, code="invalid_image")
        if sniff_format(data) is None:
            decode_image(data, limits, param=param)  # raises the proper 415
        async with self._decode_sem:
            try:
                return await asyncio.wait_for(
                    asyncio.to_thread(decode_image, data, limits, param=param, target_side=target_side),
                    self.settings.limits.decode_timeout_s,
                )
            except TimeoutError:
                raise InvalidRequestError(
                    "The image took too long to decode.", param=param, code="image_decode_timeout"
                ) from None
