"""SSRF-safe fetching of user-supplied http(s) URLs.

Safe by default:

- URLs that parsers disagree on are refused: userinfo (``user@host``), backslashes, spaces
  and control characters, percent-encoded or otherwise odd host names, non-http(s) schemes.
- The host is resolved once, by an injectable resolver, and *every* answer is checked
  (:class:`~mmserve.media.net.policy.NetworkPolicy`); IP literals in any spelling are
  checked without a lookup.
- The connection goes to the checked address: the URL is rewritten to the IP, and the
  ``Host`` header and TLS SNI (httpx's ``sni_hostname`` extension; the certificate is
  verified against the name) keep the name. A second DNS answer can never be used (no DNS
  rebinding), and environment proxies are ignored (``trust_env=False``).
- Redirects are followed by hand, at most ``max_redirects`` hops, each hop validated and
  resolved and checked again.
- Bytes are capped from Content-Length and while streaming (raw bytes: compressed bodies
  are refused, so a small gzip body cannot expand past the cap); connect, read and total
  timeouts apply, and at most ``max_concurrency`` fetches run at once.

Every refusal is a 422 (``MediaFetchError``) that gives the reason (refused address,
timeout, too many redirects, status code) without echoing resolved addresses or library
messages: naming the address an internal host name resolves to would leak the network.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from mmserve.errors import InvalidRequestError, MediaFetchError, MMServeError, OverloadedError, PayloadTooLargeError
from mmserve.media.budget import ImageBudget
from mmserve.media.net.policy import IPAddress, NetworkPolicy, normalize_host, parse_ip
from mmserve.settings import FetchSettings

Resolver = Callable[[str, int], Awaitable[list[str]]]
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_URL = 8192
_LOCATION = "x-mmserve-location"  # where _LocationKept puts a response's Location header


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass
class Fetched:
    data: bytes
    content_type: str | None
    url: str


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # normalised ASCII name, or the IP literal's text
    port: int
    path: str  # path and query (the fragment is never sent)
    ip: IPAddress | None  # set when the host is an IP literal


class SafeFetcher:
    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.resolver = resolver or system_resolver
        self._transport = _Borrowed(transport) if transport is not None else None
        self.policy = NetworkPolicy(settings.allow_networks, settings.allow_hosts, settings.deny_hosts)
        self._sems: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._ssl: ssl.SSLContext | None = None

    def with_limits(self, *, max_bytes: int, total_timeout_s: float) -> SafeFetcher:
        """The same address policy, resolver and transport with other caps, always enabled.

        For the files a third-party provider links to in its answers (generated images and
        videos): fetched as safely as a user's links, even where users may not send links.
        """
        update = {"enabled": True, "max_bytes": max_bytes, "total_timeout_s": total_timeout_s}
        clone = SafeFetcher(self.settings.model_copy(update=update), resolver=self.resolver)
        clone._transport = self._transport
        return clone

    def check_address(self, ip: IPAddress) -> str | None:
        """The reason an address is refused, or None if it may be fetched."""
        return self.policy.check_address(ip)

    async def fetch(
        self, url: str, *, param: str, max_bytes: int | None = None, budget: ImageBudget | None = None
    ) -> Fetched:
        """The body of ``url`` (at most ``max_bytes``); ``budget``: the request's total, charged as bytes arrive."""
        s = self.settings
        if not s.enabled:
            raise MediaFetchError(
                "This server does not fetch media URLs; send the image as a base64 data URI.",
                param=param,
                code="url_fetch_disabled",
            )
        limit = min(max_bytes or s.max_bytes, s.max_bytes)
        sem = self._semaphore()
        try:
            await asyncio.wait_for(sem.acquire(), s.total_timeout_s)
        except TimeoutError:
            raise OverloadedError(
                "Too many media URLs are being fetched right now; retry shortly.", headers={"Retry-After": "1"}
            ) from None
        try:
            return await asyncio.wait_for(self._fetch(url, param, limit, budget), s.total_timeout_s)
        except TimeoutError:
            raise MediaFetchError(
                f"Fetching the URL took longer than {s.total_timeout_s:g} s.", param=param, code="url_timeout"
            ) from None
        finally:
            sem.release()

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        for old in [lp for lp in self._sems if lp.is_closed()]:
            del self._sems[old]
        return self._sems.setdefault(loop, asyncio.Semaphore(self.settings.max_concurrency))

    async def _fetch(self, url: str, param: str, limit: int, budget: ImageBudget | None) -> Fetched:
        s = self.settings
        timeout = httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s)
        if self._ssl is None:  # loading the CA bundle takes ~20 ms: once, not per fetch
            self._ssl = httpx.create_ssl_context()
        inner = self._transport or httpx.AsyncHTTPTransport(verify=self._ssl, trust_env=False)
        async with httpx.AsyncClient(
            transport=_LocationKept(inner), timeout=timeout, follow_redirects=False, trust_env=False
        ) as client:
            for hop in range(s.max_redirects + 1):
                request = await self._pinned_request(client, url, param, hop)
                try:
                    resp = await client.send(request, stream=True)
                except httpx.TimeoutException:
                    raise MediaFetchError("Fetching the URL timed out.", param=param, code="url_timeout") from None
                except httpx.HTTPError:
                    raise MediaFetchError(
                        "The URL could not be reached (connection failed).", param=param, code="url_unreachable"
                    ) from None
                try:
                    if resp.status_code in _REDIRECTS:
                        url = _redirect_target(url, resp.headers.get(_LOCATION, ""), param)
                        continue
                    if resp.status_code != 200:
                        raise MediaFetchError(
                            f"The URL answered HTTP {resp.status_code}; it must answer 200 with the image.",
                            param=param,
                            code="url_bad_status",
                        )
                    data = await _read_capped(resp, limit, param, budget)
                    return Fetched(data, resp.headers.get("content-type"), url)
                finally:
                    await resp.aclose()
        raise MediaFetchError(
            f"The URL redirected more than {s.max_redirects} times.", param=param, code="url_too_many_redirects"
        )

    async def _pinned_request(self, client: httpx.AsyncClient, url: str, param: str, hop: int) -> httpx.Request:
        """A request to the checked IP of ``url``, with the name in Host and TLS SNI."""
        t = parse_target(url, param, hop=hop)
        reason = self.policy.check_host(t.host)
        if reason:
            raise _refused(reason, param, hop)
        if t.ip is not None:
            addresses = [t.ip]
        else:
            try:
                answers = await self.resolver(t.host, t.port)
            except (OSError, UnicodeError):
                answers = []
            addresses = [a for a in (parse_ip(x) for x in answers) if a is not None]
            if not addresses:
                raise MediaFetchError(
                    "The URL's host name does not resolve.", param=param, code="url_unresolvable"
                ) from None
        for ip in addresses:  # every answer must be acceptable, not just the one used
            reason = self.policy.check_address(ip)
            if reason:
                raise _refused(reason, param, hop)
        ip = addresses[0]
        ip_host = f"[{ip}]" if ip.version == 6 else str(ip)
        default_port = t.port == (443 if t.scheme == "https" else 80)
        name = f"[{t.host}]" if ":" in t.host else t.host
        headers = {
            "Host": name if default_port else f"{name}:{t.port}",
            "User-Agent": self.settings.user_agent,
            "Accept": "image/*,*/*;q=0.5",
            "Accept-Encoding": "identity",
        }
        extensions = {"sni_hostname": t.host} if t.scheme == "https" and t.ip is None else {}
        return client.build_request(
            "GET", f"{t.scheme}://{ip_host}:{t.port}{t.path}", headers=headers, extensions=extensions
        )


class _Borrowed(httpx.AsyncBaseTransport):
    """An injected transport, used by each fetch's client but closed by its owner, not by the client."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)


class _LocationKept(httpx.AsyncBaseTransport):
    """Hides each response's ``Location`` from httpx under another name.

    Even with ``follow_redirects=False`` httpx parses a redirect's Location itself (to offer
    ``response.next_request``), and a value it cannot parse (``javascript:alert(1)``,
    ``http:\\\\host\\x``) raises ``httpx.InvalidURL`` out of ``send()``, which is no
    ``httpx.HTTPError``. The fetcher reads and validates Location by its own rules instead.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        raw = resp.headers.raw
        if any(k.lower() == b"location" for k, _ in raw):
            resp.headers = httpx.Headers([(_LOCATION.encode() if k.lower() == b"location" else k, v) for k, v in raw])
        return resp

    async def aclose(self) -> None:
        await self.inner.aclose()


def _redirect_target(url: str, location: str, param: str) -> str:
    """The absolute URL a redirect's Location points to (it is validated like any URL next)."""
    location = location.strip()
    if not location:
        raise MediaFetchError("The URL redirected without a Location.", param=param, code="url_redirect_invalid")
    try:
        return urljoin(url, location)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise MediaFetchError(
            "The URL redirected to a malformed URL.", param=param, code="url_redirect_invalid"
        ) from None


def parse_target(url: str, param: str, *, hop: int = 0) -> _Target:
    """Refuse URLs that parsers disagree on; return the parts that will be used."""

    def malformed(why: str) -> MMServeError:
        if hop:
            return MediaFetchError(f"The URL redirected to {why}.", param=param, code="url_redirect_invalid")
        return InvalidRequestError(f"The image URL is {why}.", param=param, code="invalid_image_url")

    if len(url) > _MAX_URL:
        raise malformed(f"a URL longer than {_MAX_URL} characters" if hop else f"longer than {_MAX_URL} characters")
    if any(c in url for c in "\\ ") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _refused("it contains backslashes, spaces or control characters", param, hop)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise malformed("a malformed URL" if hop else "malformed") from None
    if parts.scheme not in ("http", "https"):
        raise malformed("a URL that is not http(s)" if hop else "not an http(s) URL")
    if "@" in parts.netloc or parts.username is not None:
        raise _refused("credentials (user@host) are not allowed in media URLs", param, hop)
    raw_host = parts.hostname or ""
    host = normalize_host(raw_host)
    if not raw_host or host is None:
        raise _refused("its host is not a plain DNS name or IP address", param, hop)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return _Target(parts.scheme, host, port, path, parse_ip(host))


def validate_url(url: str, param: str) -> SplitResult:
    """Refuse URLs that parsers disagree on (see :func:`parse_target`); the parsed URL."""
    parse_target(url, param)
    return urlsplit(url)


def _refused(reason: str, param: str, hop: int) -> MediaFetchError:
    prefix = "The URL redirected to a URL that was refused" if hop else "The URL was refused"
    return MediaFetchError(f"{prefix}: {reason}.", param=param, code="url_refused")


async def _read_capped(resp: httpx.Response, limit: int, param: str, budget: ImageBudget | None) -> bytes:
    def too_large() -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"The URL's content is larger than the {limit} byte limit.", param=param, code="url_content_too_large"
        )

    if resp.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        raise MediaFetchError(
            "The URL answered with compressed (Content-Encoding) content; serve the image uncompressed.",
            param=param,
            code="url_bad_content",
        )
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large()
    if budget is not None and declared.isdigit() and int(declared) > budget.bytes_left:
        raise budget.bytes_exceeded(param)
    if resp.is_stream_consumed:  # an in-memory response (httpx.MockTransport) arrives read already
        if len(resp.content) > limit:
            raise too_large()
        if budget is not None:
            budget.charge_bytes(len(resp.content), param=param)
        return resp.content
    buf = bytearray()
    async for chunk in resp.aiter_raw():
        buf += chunk
        if len(buf) > limit:
            raise too_large()
        if budget is not None:
            budget.charge_bytes(len(chunk), param=param)
    return bytes(buf)
