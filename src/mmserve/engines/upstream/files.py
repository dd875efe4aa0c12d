"""Files a provider answers with (base64 in JSON, or links), taken in as safely as a user's.

Links are never passed through to clients: they are fetched through the SSRF-safe fetcher
(:mod:`mmserve.media.net.fetch`, the server's address policy: a link to a private, loopback or
link-local address is refused), capped in bytes and time, and the bytes are stored and served
by mmserve like its own outputs (signed links). An image is sent on as the provider made it
only when its bytes are the format the client asked for and its header declares a size within
the card's limits; any other is decoded in the isolated decode worker and encoded again.
"""

from __future__ import annotations

import binascii
import io
from typing import Any

import pybase64
from PIL import Image as PILImage
from PIL.Image import Image

from mmserve.engines.upstream.client import UpstreamClient
from mmserve.errors import MMServeError, UpstreamError
from mmserve.media.image.decode import ImageLimits
from mmserve.media.image.ingest import MediaIngestor
from mmserve.media.image.sniff import sniff
from mmserve.media.net.fetch import SafeFetcher


class ProviderFiles:
    """One engine's way to take in the files its provider sends or links to."""

    def __init__(self, client: UpstreamClient, media: MediaIngestor, *, max_bytes: int, timeout_s: float) -> None:
        self.client = client
        self.media = media
        self.max_bytes = max_bytes
        self.fetcher: SafeFetcher = media.fetcher.with_limits(max_bytes=max_bytes, total_timeout_s=timeout_s)

    def refused(self, what: str, e: MMServeError) -> UpstreamError:
        return UpstreamError(
            f"The provider '{self.client.name}' of '{self.client.card_id}' returned {what} mmserve cannot use: "
            f"{e.message}",
            code="upstream_bad_output",
        )

    async def download(self, url: str, what: str) -> bytes:
        """A link in the provider's answer, fetched with the server's SSRF policy."""
        try:
            fetched = await self.fetcher.fetch(url, param="upstream", max_bytes=self.max_bytes)
        except MMServeError as e:
            raise self.refused(f"a link to {what}", e) from None
        return fetched.data

    def b64(self, value: Any, what: str) -> bytes:
        if not isinstance(value, str) or len(value) > self.max_bytes * 4 // 3 + 4:
            raise self.client.bad_response(f"{what} that is not base64 within {self.max_bytes} bytes")
        try:
            return pybase64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise self.client.bad_response(f"{what} that is not valid base64") from None

    async def item(self, item: Any, what: str) -> bytes:
        """The bytes of one ``{"b64_json": ...}`` or ``{"url": ...}`` item of an OpenAI ``data`` list."""
        if isinstance(item, dict) and item.get("b64_json"):
            return self.b64(item["b64_json"], what)
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            return await self.download(item["url"], what)
        raise self.client.bad_response(f"{what} with neither b64_json nor url")

    # ------------------------------------------------------------------ images

    def passes_as_is(self, data: bytes, fmt: str, limits: ImageLimits) -> bool:
        """Whether ``data`` can be sent on unchanged: it is ``fmt`` and its header's size is within ``limits``.

        Only the header is parsed (Pillow opens lazily); nothing is decoded in this process.
        """
        if sniff(data) != fmt:
            return False
        try:
            with PILImage.open(io.BytesIO(data)) as img:
                w, h = img.size
                animated = getattr(img, "is_animated", False)
        except Exception:
            return False
        return (
            not animated
            and limits.min_side <= min(w, h)
            and max(w, h) <= limits.max_side
            and w * h <= limits.max_pixels
        )

    async def decode_image(self, data: bytes, limits: ImageLimits, *, keep_alpha: bool) -> Image:
        """Decoded in the isolated decode worker (a bad file is the provider's failure, not the client's)."""
        try:
            return await self.media.decode(data, limits, param="upstream", target_side=None, keep_alpha=keep_alpha)
        except MMServeError as e:
            raise self.refused("an image", e) from None
