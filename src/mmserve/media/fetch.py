"""SSRF-safe fetching of user-supplied http(s) URLs.

Safe by default: the host is resolved once by an injectable resolver, every address is
checked (loopback, private, link-local, CGNAT, multicast, reserved, unspecified and
IPv4-mapped/embedded forms are refused unless ``allow_networks`` admits them), and the
connection goes to the checked address (the URL is rewritten to the IP; ``Host`` and TLS
SNI keep the name), so a second DNS answer can never redirect it (no DNS rebinding).
Redirects are followed by hand, each hop checked again. Bytes are capped from
Content-Length and while streaming, with connect/read/total timeouts and a concurrency cap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from mmserve.api.errors import InvalidRequestError, MediaFetchError, PayloadTooLargeError
from mmserve.settings import FetchSettings

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Networks never fetched unless explicitly allowed (in addition to the ipaddress flags).
_BLOCKED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
]


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass
class Fetched:
    data: bytes
    content_type: str | None
    url: str


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
        self._transport = transport
        self._allowed = [ipaddress.ip_network(n, strict=False) for n in settings.allow_networks]
        self._sem = asyncio.Semaphore(settings.max_concurrency)

    # -------------------------------------------------------------- checks

    def check_address(self, ip: IPAddress) -> str | None:
        """The reason an address is refused, or None if it may be fetched."""
        if any(ip in net for net in self._allowed):
            return None
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            if any(embedded in net for net in self._allowed):
                return None
            return "it points at an IPv4-mapped or embedded address"
        if any(ip.version == net.version and ip in net for net in _BLOCKED):
            return "it points at a private, loopback or reserved address"
        if not ip.is_global or ip.is_multicast:
            return "it points at a non-public address"
        return None

    def check_host(self, host: str) -> str | None:
        host = host.lower().rstrip(".")
        s = self.settings
        if any(_host_matches(host, d) for d in s.deny_hosts):
            return "its host is on the server's deny list"
        if s.allow_hosts and not any(_host_matches(host, a) for a in s.allow_hosts):
            return "its host is not on the server's allow list"
        return None

    # -------------------------------------------------------------- fetch

    async def fetch(self, url: str, *, param: str, max_bytes: int | None = None) -> Fetched:
        if not self.settings.enabled:
            raise MediaFetchError(
                "This server does not fetch media URLs; send the image as a base64 data URI.",
                param=param,
                code="url_fetch_disabled",
            )
        limit = min(max_bytes or self.settings.max_bytes, self.settings.max_bytes)
        try:
            async with self._sem:
                return await asyncio.wait_for(self._fetch(url, param, limit), self.settings.total_timeout_s)
        except TimeoutError:
            raise MediaFetchError(
                f"Fetching the URL timed out after {self.settings.total_timeout_s:g} s.",
                param=param,
                code="url_timeout",
            ) from None

    async def _fetch(self, url: str, param: str, limit: int) -> Fetched:
        s = self.settings
        timeout = httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s)
        async with httpx.AsyncClient(
            transport=self._transport, timeout=timeout, follow_redirects=False, trust_env=False
        ) as client:
            for _hop in range(s.max_redirects + 1):
                target, host_header, sni = await self._pin(url, param)
                headers = {
                    "Host": host_header,
                    "User-Agent": s.user_agent,
                    "Accept": "image/*,*/*;q=0.5",
                    "Accept-Encoding": "identity",
                }
                ext = {"sni_hostname": sni} if sni else {}
                try:
                    req = client.build_request("GET", target, headers=headers, extensions=ext)
                    resp = await client.send(req, stream=True)
                except httpx.TimeoutException:
                    raise MediaFetchError("Fetching the URL timed out.", param=param, code="url_timeout") from None
                except httpx.HTTPError:
                    raise MediaFetchError(
                        "The URL could not be reached.", param=param, code="url_unreachable"
                    ) from None
                try:
                    if resp.status_code in (301, 302, 303, 307, 308):
                        location = resp.headers.get("location")
                        if not location:
                            raise MediaFetchError(
                                "The URL redirected without a Location.", param=param, code="url_bad_redirect"
                            )
                        url = urljoin(url, location)
                        continue
                    if resp.status_code != 200:
                        raise MediaFetchError(
                            f"The URL answered HTTP {resp.status_code}.", param=param, code="url_bad_status"
                        )
                    data = await _read_capped(resp, limit, param)
                    return Fetched(data, resp.headers.get("content-type"), url)
                finally:
                    await resp.aclose()
        raise MediaFetchError(
            f"The URL redirected more than {s.max_redirects} times.",
            param=param,
            code="url_too_many_redirects",
        )

    async def _pin(self, url: str, param: str) -> tuple[str, str, str | None]:
        """Validate ``url`` and return (url with the checked IP, Host header, TLS SNI name)."""
        parts = validate_url(url, param)
        host = parts.hostname or ""
        reason = self.check_host(host)
        if reason:
            raise MediaFetchError(f"The URL was refused: {reason}.", param=param, code="url_refused")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        literal = _parse_ip(host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                answers = await self.resolver(host, port)
            except (OSError, UnicodeError):
                raise MediaFetchError(
                    "The URL's host name does not resolve.", param=param, code="url_unresolvable"
                ) from None
            addresses = [a for a in (_parse_ip(x) for x in answers) if a is not None]
            if not addresses:
                raise MediaFetchError("The URL's host name does not resolve.", param=param, code="url_unresolvable")
        for ip in addresses:  # every answer must be acceptable, not just the first
            reason = self.check_address(ip)
            if reason:
                raise MediaFetchError(f"The URL was refused: {reason}.", param=param, code="url_refused")
        ip = addresses[0]
        ip_host = f"[{ip}]" if ip.version == 6 else str(ip)
        netloc = f"{ip_host}:{port}"
        path = parts.path or "/"
        target = f"{parts.scheme}://{netloc}{path}" + (f"?{parts.query}" if parts.query else "")
        default_port = port == (443 if parts.scheme == "https" else 80)
        host_header = (f"[{host}]" if ":" in host else host) + ("" if default_port else f":{port}")
        return target, host_header, (host if parts.scheme == "https" and literal is None else None)


def validate_url(url: str, param: str) -> SplitResult:
    """Refuse URLs that parsers disagree on: userinfo, backslashes, control characters, odd schemes."""
    if len(url) > 8192:
        raise InvalidRequestError("The URL is longer than 8192 characters.", param=param)
    if any(c in url for c in "\\\t\r\n\x00 ") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise MediaFetchError(
            "The URL was refused: it contains backslashes, spaces or control characters.",
            param=param,
            code="url_refused",
        )
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise InvalidRequestError("The URL is malformed.", param=param) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequestError("Image URLs must be http(s) URLs or data: URIs.", param=param)
    if "@" in parts.netloc or parts.username is not None:
        raise MediaFetchError(
            "The URL was refused: credentials (user@host) are not allowed in media URLs.",
            param=param,
            code="url_refused",
        )
    if not parts.hostname:
        raise InvalidRequestError("The URL has no host.", param=param)
    return parts


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        pass
    # Legacy IPv4 notations that resolvers accept: 2130706433, 0x7f.1, 017700000001, 127.1
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
        if ip.packed[:12] == bytes(12) and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
            return ipaddress.IPv4Address(ip.packed[12:])
    return None


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("."):
        return host.endswith(pattern) or host == pattern[1:]
    return host == pattern


async def _read_capped(resp: httpx.Response, limit: int, param: str) -> bytes:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The URL's content is larger than the {limit} byte limit.", param=param)
    buf = bytearray()
    async for chunk in resp.aiter_bytes():
        buf += chunk
        if len(buf) > limit:
            raise PayloadTooLargeError(f"The URL's content is larger than the {limit} byte limit.", param=param)
    return bytes(buf)
