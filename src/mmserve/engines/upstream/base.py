"""What every upstream engine shares: its provider's client, loaded and closed with the card."""

from __future__ import annotations

from typing import ClassVar

from mmserve.engines.base import Engine, EngineOptions
from mmserve.engines.upstream.client import UpstreamClient
from mmserve.engines.upstream.options import UpstreamOptions
from mmserve.errors import EngineError
from mmserve.media.image.ingest import MediaIngestor


class UpstreamEngine(Engine):
    Options: ClassVar[type[EngineOptions]] = UpstreamOptions
    options: UpstreamOptions
    in_gateway = True  # an HTTP client: nothing to place on a cluster
    _client: UpstreamClient | None = None

    def load(self) -> None:
        client = UpstreamClient(self.card.id, self.options)
        client.check_key()
        self._client = client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def memory_bytes(self) -> int | None:
        return 0  # no weights here: an upstream card never counts against the memory budget

    @property
    def upstream(self) -> UpstreamClient:
        if self._client is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        return self._client

    @property
    def remote_model(self) -> str:
        """The provider's name for the model."""
        return self.options.model or self.card.id

    @property
    def media(self) -> MediaIngestor:
        """The server's media layer (fetcher, decode workers), lent by the runtime."""
        media = self.context.media
        if media is None:
            raise EngineError(f"Model '{self.card.id}' was loaded without the server's media layer.")
        return media
