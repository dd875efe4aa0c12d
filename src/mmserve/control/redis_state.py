"""State that every gateway must share, in Redis (``MMSERVE_REDIS_URL``; unset: each process keeps its own).

- **Rate-limit windows** (:mod:`mmserve.control.redis_limits`): sorted sets per key.
- **Key revocation**: a revoking process (a gateway, or ``mmserve keys revoke``) publishes the
  key's hash on ``<prefix>events``; every gateway drops it from its key cache at once, so the
  key is refused everywhere within milliseconds instead of ``key_cache_ttl_s``. When a
  gateway's subscription breaks (Redis restarted, a network cut) it clears its whole key cache
  on reconnecting, since it may have missed a revocation meanwhile.
- **Route cooldowns**: a model that failed to serve is published with its cooldown and kept as
  ``<prefix>cooldown:<model>`` (expiring with it), so that routers on every gateway try it last,
  including gateways that start during the cooldown.

Built on redis-py's asyncio client and its pub/sub; imported only when a Redis URL is set
(``pip install 'mmserve[redis]'``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from mmserve.errors import MMServeError

log = logging.getLogger("mmserve.redis")

RECONNECT_S = 0.5


class RedisState:
    def __init__(self, url: str, *, prefix: str = "mmserve:") -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:  # pragma: no cover - the extra is in the test set-up
            raise MMServeError(
                "MMSERVE_REDIS_URL is set but redis-py is missing: pip install 'mmserve[redis]'"
            ) from None
        self.url = url
        self.prefix = prefix
        self.client: Any = aioredis.Redis.from_url(url, health_check_interval=5, socket_connect_timeout=5)
        self.channel = f"{prefix}events"
        #: called with a revoked key's hash
        self.on_revoked: list[Callable[[str], None]] = []
        #: called with (model, seconds of cooldown left)
        self.on_cooldown: list[Callable[[str, float], None]] = []
        #: called when the subscription (re)starts: anything published meanwhile may have been missed
        self.on_resync: list[Callable[[], None]] = []
        self.subscribed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, listen: bool = True, timeout: float = 10.0) -> None:
        """Check the connection (a wrong URL fails the start) and subscribe to other gateways' events."""
        await self.client.ping()
        if listen:
            self._listener = asyncio.create_task(self._listen())
            await asyncio.wait_for(self.subscribed.wait(), timeout)

    async def stop(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.client.aclose()

    # ------------------------------------------------------------------ publishing

    async def publish_revoked(self, key_hash: str) -> None:
        await self.client.publish(self.channel, json.dumps({"type": "revoked", "hash": key_hash}))

    def report_cooldown(self, model: str, seconds: float) -> None:
        """:meth:`publish_cooldown` in the background (routers report failures from synchronous code)."""
        task = asyncio.get_running_loop().create_task(self._quietly(self.publish_cooldown(model, seconds)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _quietly(self, work: Any) -> None:
        try:
            await work
        except Exception as e:  # a cooldown that is not shared only costs other gateways one failed try
            log.warning("could not share a route cooldown through Redis: %s", e)

    async def publish_cooldown(self, model: str, seconds: float) -> None:
        ms = max(1, int(seconds * 1000))
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(self.key("cooldown", model), "1", px=ms)
            pipe.publish(self.channel, json.dumps({"type": "cooldown", "model": model, "seconds": seconds}))
            await pipe.execute()

    # ------------------------------------------------------------------ listening

    async def _listen(self) -> None:
        import redis.exceptions

        while not self._closing:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    await self._resync()
                    self.subscribed.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except (redis.exceptions.RedisError, OSError) as e:
                self.subscribed.clear()
                log.warning("Redis subscription lost (%s); reconnecting", e)
                await asyncio.sleep(RECONNECT_S)

    async def _resync(self) -> None:
        for hook in self.on_resync:
            hook()
        pattern = self.key("cooldown", "*")
        async for name in self.client.scan_iter(match=pattern, count=100):
            ttl_ms = await self.client.pttl(name)
            if ttl_ms > 0:
                model = name.decode()[len(self.key("cooldown", "")) :]
                for on_cooldown in self.on_cooldown:
                    on_cooldown(model, ttl_ms / 1000)

    def _dispatch(self, data: bytes) -> None:
        try:
            event = json.loads(data)
            if event["type"] == "revoked":
                for on_revoked in self.on_revoked:
                    on_revoked(str(event["hash"]))
            elif event["type"] == "cooldown":
                for on_cooldown in self.on_cooldown:
                    on_cooldown(str(event["model"]), float(event["seconds"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event on %s", self.channel)
