"""The one HTTP client of the upstream engines: a third-party OpenAI-compatible provider.

Every ``upstream-<task>`` card names its provider with the same options (:class:`UpstreamOptions`):
``base_url``, the environment variable holding the key (``api_key_env``), timeouts, retries.
What this module gives them:

- **One connection pool per provider** (keep-alive, :mod:`.wire`), shared by every card that names
  the same ``base_url``, key variable and pool settings, in one event loop (asyncio connections
  cannot cross loops; a server has one). The key is read from the environment at load time and
  sent as a bearer token; it never appears in a message.
- **A per-provider concurrency limit** (``max_concurrency``, all its cards together): more
  requests wait up to ``queue_timeout_s`` for a slot, then get a 503 with Retry-After (a router
  falls back to its next candidate).
- **Retries** of 408, 409, 429 and 5xx answers and of connection failures, at most ``max_retries``
  times, after the provider's ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date) or an
  exponential backoff with jitter. A wait longer than ``max_retry_wait_s`` is not waited: the
  request fails at once (429: a 503 carrying the provider's Retry-After), so that a router can
  serve it elsewhere now rather than later.
- **Errors in mmserve's envelope**, naming the provider (``provider``, default the base URL's host):
  a 400 for what the provider refused in the request (its short message, its ``param``), a 502
  :class:`~mmserve.errors.UpstreamError` for its failures (a 504 for timeouts), a 503 when it rate
  limits. The provider's raw body is never passed on: at most 200 characters of its message,
  with the key blanked out.

Why by hand rather than the ``openai`` SDK: the SDK is one more client per card with its own
retry policy and pool, does not share a limit across cards of one provider, and parses
responses into its own models (an extra copy of every base64 image); the engines need only
raw requests, which this keeps on one pool.

Why not httpx's ``AsyncClient`` (nor httpcore, its transport, used here before): every request
through an upstream card pays for its client on mmserve's event loop, and their layers (URL
merging, cookies, auth flows, redirects, pure-Python HTTP/1.1 in h11) do nothing for a fixed
provider. :mod:`mmserve.engines.common.http.wire` speaks HTTP/1.1 over asyncio with httptools' C parser (see there why),
from header lines prepared once per card. Multipart bodies (edits, audio uploads) are still
encoded by httpx's request model.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import Field, field_validator

from mmserve.engines.base import EngineOptions
from mmserve.engines.common.http.pool import ConnectionPool
from mmserve.engines.common.http.wire import (
    TRANSPORT_ERRORS,
    ConnectTimeout,
    HTTPResponse,
    Timeouts,
    TransportTimeout,
    header_lines,
    request_bytes,
)
from mmserve.errors import (
    EngineUnavailableError,
    InvalidRequestError,
    MMServeError,
    OverloadedError,
    UpstreamError,
    UpstreamTimeoutError,
)

log = logging.getLogger("mmserve.engines.upstream")

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
ERROR_BODY_BYTES = 64 * 1024  # of an error answer, read to find its message
MESSAGE_CHARS = 200


class UpstreamOptions(EngineOptions):
    base_url: str = Field(description="The provider's OpenAI-compatible API root, e.g. https://api.provider.com/v1")
    model: str | None = Field(default=None, description="The provider's model name; default: the card id.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the API key.")
    provider: str | None = Field(default=None, description="The provider's name in messages; default: its host.")
    timeout_s: float = Field(default=120.0, gt=0, description="Longest wait for the provider's next bytes.")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent with every request.")
    max_connections: int = Field(default=100, ge=1, description="Connections kept to the provider (one pool).")
    max_concurrency: int = Field(
        default=64, ge=1, description="Requests in flight to the provider at once, all its cards together."
    )
    queue_timeout_s: float = Field(default=30.0, ge=0, description="Longest wait for one of those slots.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Retries of 408/409/429/5xx and connect failures.")
    retry_backoff_s: float = Field(default=0.5, ge=0, description="First backoff when no Retry-After is sent.")
    max_retry_wait_s: float = Field(
        default=20.0, ge=0, description="A longer Retry-After is not waited for: the request fails (or falls back)."
    )
    max_response_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, description="Largest answer read.")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api.provider.com/v1")
        return v.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _header_text(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not name or any(c in name for c in " :\r\n\0") or any(c in value for c in "\r\n\0"):
                raise ValueError(f"the header {name!r}: names hold no space or colon, and neither a line break or NUL")
        return v


@dataclass(frozen=True)
class _PoolKey:
    loop: asyncio.AbstractEventLoop
    base_url: str
    key_env: str | None
    max_connections: int
    max_concurrency: int
    connector: int  # id() of an injected connector (tests), 0 for the default one


class _Pool:
    """One provider's connections and concurrency slots (in one event loop).

    No environment proxies and no redirects: the operator's base_url is where requests go.
    """

    def __init__(self, opts: UpstreamOptions, connector: Any = None) -> None:
        url = urlsplit(opts.base_url)
        self.http = ConnectionPool(url.scheme, url.hostname or "", url.port, opts.max_connections, connector)
        self.slots = asyncio.Semaphore(opts.max_concurrency)
        self.users = 0
        self.is_closed = False

    async def aclose(self) -> None:
        self.is_closed = True
        await self.http.aclose()


_POOLS: dict[_PoolKey, _Pool] = {}


class UpstreamClient:
    """One card's view of its provider: requests with the card's headers, retries and error mapping."""

    def __init__(self, card_id: str, opts: UpstreamOptions, connector: Any = None) -> None:
        self.card_id = card_id
        self.opts = opts
        self.connector = connector  # how connections are opened (default: pool.open_connection; tests wrap it)
        url = urlsplit(opts.base_url)
        self.name = opts.provider or url.hostname or "upstream"
        self._prefix = url.path.rstrip("/")
        self._timeouts = Timeouts(opts.connect_timeout_s, opts.timeout_s, opts.timeout_s, opts.timeout_s)
        self._headers: bytes | None = None  # every request's header lines (set with the key)
        self._key: str | None = None
        self._pool_key: _PoolKey | None = None
        self._pool: _Pool | None = None

    # ------------------------------------------------------------------ lifecycle

    def check_key(self) -> None:
        """Read the key from the environment (at load: a missing one is a 503 naming the variable)."""
        env = self.opts.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise EngineUnavailableError(
                    f"Model '{self.card_id}': the environment variable {env} (its API key) is not set."
                )
            self._key = key
        self._headers = self._base_headers()

    def _base_headers(self) -> bytes:
        netloc = urlsplit(self.opts.base_url).netloc.rsplit("@", 1)[-1]
        headers = [(b"Host", netloc.encode()), (b"User-Agent", b"mmserve"), (b"Accept", b"*/*")]
        if self._key:
            headers.append((b"Authorization", f"Bearer {self._key}".encode()))
        headers += [(k.encode(), v.encode()) for k, v in self.opts.headers.items()]
        return header_lines(headers)

    def pool(self) -> _Pool:
        if self._pool is not None and self._pool_key is not None and self._pool_key.loop is _loop():
            return self._pool
        opts = self.opts
        key = _PoolKey(
            _loop(),
            opts.base_url,
            opts.api_key_env,
            opts.max_connections,
            opts.max_concurrency,
            id(self.connector or 0),
        )
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _Pool(opts, self.connector)
        pool.users += 1
        self._pool_key, self._pool = key, pool
        return pool

    async def aclose(self) -> None:
        key, pool = self._pool_key, self._pool
        self._pool_key = self._pool = None
        if key is None or pool is None:
            return
        pool.users -= 1
        if pool.users <= 0 and _POOLS.get(key) is pool:
            del _POOLS[key]
            await pool.aclose()

    # ------------------------------------------------------------------ requests

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
    ) -> AsyncIterator[HTTPResponse]:
        """A 2xx response whose body is still to be read, holding one of the provider's slots.

        Failures before it (after the retries) are raised as mmserve errors. The body is ``json``,
        or a multipart form of ``data`` and ``files`` (as httpx takes them).
        """
        pool = self.pool()
        opts = self.opts
        raw = self._encode(method, path, json, params, data, files)
        attempt = 0
        while True:
            last = attempt >= opts.max_retries
            await self._acquire(pool)
            try:
                resp = await pool.http.request(raw, self._timeouts)
            except TRANSPORT_ERRORS as e:
                pool.slots.release()
                err = self._transport_error(e)
                if last:
                    raise err from e
                log.info("provider %s of '%s': %s; retrying", self.name, self.card_id, err.code)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            except BaseException:
                pool.slots.release()
                raise
            if resp.status_code in RETRY_STATUSES and not last:
                wait = self._retry_wait(resp, attempt)
                if wait is not None:
                    await resp.aclose()
                    pool.slots.release()
                    log.info("provider %s of '%s' answered %d; retrying", self.name, self.card_id, resp.status_code)
                    await asyncio.sleep(wait)
                    attempt += 1
                    continue
            try:
                if not 200 <= resp.status_code < 300:
                    head = await _read(resp, ERROR_BODY_BYTES, self, truncate=True)
                    raise self.error_for(resp.status_code, resp.headers, head)
                yield resp
                return
            finally:
                await resp.aclose()
                pool.slots.release()

    async def request_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A JSON object answer (an unreadable one is a 502 naming the provider)."""
        async with self.stream(method, path, **kwargs) as resp:
            return self.parse_json(await self.read(resp))

    def _encode(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: Mapping[str, str] | None,
        data: Mapping[str, Any] | None,
        files: Any,
    ) -> bytes:
        """The request's bytes: its head and body."""
        target = self._prefix + path
        if params:
            target += "?" + urlencode(params)
        if self._headers is None:
            self._headers = self._base_headers()
        lines = self._headers
        if data is None and files is None:
            if json_body is None:
                return request_bytes(method, target, lines, None)
            content = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
            lines += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(content)
            return request_bytes(method, target, lines, content)
        # a multipart form: httpx's encoder (boundaries, file parts), then sent like the rest
        form = httpx.Request("POST", "http://upstream/", data=data, files=files)
        content = form.read()
        lines += b"Content-Type: %s\r\nContent-Length: %d\r\n" % (form.headers["content-type"].encode(), len(content))
        return request_bytes(method, target, lines, content)

    async def read(self, resp: HTTPResponse, limit: int | None = None) -> bytes:
        """The whole body, refused past ``limit`` (default ``max_response_bytes``)."""
        return await _read(resp, limit or self.opts.max_response_bytes, self)

    def parse_json(self, data: bytes) -> dict[str, Any]:
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise self.bad_response("an answer that is not a JSON object")
        return value

    async def _acquire(self, pool: _Pool) -> None:
        if not pool.slots.locked():
            await pool.slots.acquire()
            return
        try:
            async with asyncio.timeout(self.opts.queue_timeout_s):
                await pool.slots.acquire()
        except TimeoutError:
            raise OverloadedError(
                f"mmserve already has {self.opts.max_concurrency} requests in flight to the provider "
                f"'{self.name}' (its limit) and none finished within {self.opts.queue_timeout_s:g} s. Retry shortly.",
                headers={"Retry-After": "1"},
                code="upstream_busy",
            ) from None

    # ------------------------------------------------------------------ retries

    def _backoff(self, attempt: int) -> float:
        base = self.opts.retry_backoff_s * (2**attempt)
        return float(min(self.opts.max_retry_wait_s, base * random.uniform(0.75, 1.0)))

    def _retry_wait(self, resp: HTTPResponse, attempt: int) -> float | None:
        """Seconds to wait before the next try, or None when the provider asks for longer than we wait."""
        asked = retry_after(resp.headers)
        if asked is None:
            return self._backoff(attempt)
        return asked if asked <= self.opts.max_retry_wait_s else None

    # ------------------------------------------------------------------ errors

    def error_for(self, status: int, headers: Mapping[str, str], body: bytes) -> MMServeError:
        """The mmserve error for a provider's non-2xx answer."""
        message, param = self._provider_message(body)
        said = f": {message}" if message else "."
        who = f"The provider '{self.name}' of '{self.card_id}'"
        if status == 429:
            wait = retry_after(headers)
            return OverloadedError(
                f"{who} is rate-limiting mmserve's requests (HTTP 429){said} Retry later.",
                headers={"Retry-After": str(max(1, math.ceil(wait if wait is not None else 1)))},
                code="upstream_rate_limited",
            )
        if status in (401, 403):
            where = f" in {self.opts.api_key_env}" if self.opts.api_key_env else ""
            return UpstreamError(
                f"{who} refused mmserve's credentials (HTTP {status}); the operator should check the key{where}.",
                code="upstream_auth",
            )
        if status == 408:
            return UpstreamTimeoutError(f"{who} timed out (HTTP 408){said}")
        if 400 <= status < 500 and status != 404:
            return InvalidRequestError(
                f"{who} refused the request (HTTP {status}){said}", param=param, code="upstream_invalid_request"
            )
        return UpstreamError(f"{who} answered HTTP {status}{said}")

    def bad_response(self, what: str) -> UpstreamError:
        return UpstreamError(
            f"The provider '{self.name}' of '{self.card_id}' sent {what}.", code="upstream_bad_response"
        )

    def _transport_error(self, e: Exception) -> UpstreamError:
        who = f"The provider '{self.name}' of '{self.card_id}'"
        if isinstance(e, TransportTimeout):
            phase = "to connect" if isinstance(e, ConnectTimeout) else "to answer"
            return UpstreamTimeoutError(f"{who} took too long {phase}.")
        return UpstreamError(f"{who} could not be reached.", code="upstream_unreachable")

    def mid_stream_error(self, e: Exception) -> MMServeError:
        """A failure while a 2xx body is read (timeouts between chunks, a dropped connection)."""
        if isinstance(e, MMServeError):
            return e
        if isinstance(e, TRANSPORT_ERRORS):
            return self._transport_error(e)
        return self.bad_response("an unreadable answer")

    def _provider_message(self, body: bytes) -> tuple[str, str | None]:
        """The provider's short error message and the field it names, from its (OpenAI-shaped) error body."""
        try:
            doc = json.loads(body)
        except ValueError:
            return "", None
        err = doc.get("error", doc) if isinstance(doc, dict) else None
        if isinstance(err, str):
            return self.clip(err), None
        if not isinstance(err, dict):
            return "", None
        message = err.get("message") or err.get("detail") or ""
        param = err.get("param")
        ok_param = isinstance(param, str) and 0 < len(param) <= 64 and param.replace("_", "").replace(".", "").isalnum()
        return self.clip(message if isinstance(message, str) else ""), param if ok_param else None

    def clip(self, text: str) -> str:
        """At most MESSAGE_CHARS of one line of the provider's text, the key blanked out."""
        text = " ".join(text.split())
        if self._key:
            text = text.replace(self._key, "[key]")
        return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asks to wait: ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or a date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def _read(resp: HTTPResponse, limit: int, client: UpstreamClient, *, truncate: bool = False) -> bytes:
    """The body, at most ``limit`` bytes: past it, refused (or, with ``truncate``, cut: error answers)."""
    declared = resp.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > limit:
        raise client.bad_response(f"an answer of {declared} bytes (more than the {limit} byte limit)")
    buf = bytearray()
    try:
        async for chunk in resp.aiter_bytes():
            buf += chunk
            if len(buf) > limit:
                if truncate:
                    return bytes(buf[:limit])
                raise client.bad_response(f"an answer of more than {limit} bytes")
    except TRANSPORT_ERRORS as e:
        if truncate:
            return bytes(buf)
        raise client.mid_stream_error(e) from e
    return bytes(buf)


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()
