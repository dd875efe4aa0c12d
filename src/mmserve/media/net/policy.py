"""Which hosts and addresses the media fetcher may connect to.

An address is refused when it is loopback, private, link-local, carrier-grade NAT,
multicast, unspecified, reserved or documentation space, unless
``FetchSettings.allow_networks`` admits it. IPv6 forms that stand for one IPv4 address
(IPv4-mapped ``::ffff:a.b.c.d``, IPv4-translated ``::ffff:0:a.b.c.d``, IPv4-compatible
``::a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``) are normalised to that IPv4 address before both
checks: the allowlist admits them only as that address, and NAT64 addresses are judged as
it; the others are refused unless admitted (no client needs them; they only disguise).
6to4 (``2002::/16``) and Teredo (``2001::/32``) addresses are tunnels to whole networks
behind a relay, not forms of the IPv4 address they embed: an allowed IPv4 address never
admits them, only an allowed IPv6 network does. Host names are normalised (IDNA, lower
case, no trailing dot) and must be plain DNS names or IP literals; legacy IPv4 spellings
that resolvers accept (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``) are read as
the address they mean, so they are checked, never passed to a resolver.
"""

from __future__ import annotations

import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Networks never fetched unless explicitly allowed (in addition to ``not is_global``).
BLOCKED = [
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
        "::ffff:0:0:0/96",
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
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TRANSLATED = bytes(8) + b"\xff\xff\x00\x00"  # ::ffff:0:a.b.c.d (SIIT, RFC 2765)
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class NetworkPolicy:
    def __init__(self, allow_networks: list[str], allow_hosts: list[str], deny_hosts: list[str]) -> None:
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allow_networks]
        self.allow_hosts = [h.lower().rstrip(".") for h in allow_hosts]
        self.deny_hosts = [h.lower().rstrip(".") for h in deny_hosts]

    def check_address(self, ip: IPAddress) -> str | None:
        """The reason an address is refused, or None if it may be fetched."""
        v4 = ipv4_meant(ip)
        if v4 is not None:  # one IPv4 address in an IPv6 spelling: judged as that address
            if self._admitted(v4) or self._admitted(ip):
                return None
            if ip in _NAT64:
                return _public_or_reason(v4)
            return "it points at an IPv4-mapped or IPv4-embedding IPv6 address"
        if self._admitted(ip):
            return None
        if tunnel_ipv4(ip) is not None:
            return "it points at a 6to4 or Teredo tunnel address"
        return _public_or_reason(ip)

    def check_host(self, host: str) -> str | None:
        """The reason a (normalised) host name is refused by the allow/deny lists, or None."""
        if any(host_matches(host, d) for d in self.deny_hosts):
            return "its host is on the server's deny list"
        if self.allow_hosts and not any(host_matches(host, a) for a in self.allow_hosts):
            return "its host is not on the server's allow list"
        return None

    def _admitted(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allowed)


def normalize_host(host: str) -> str | None:
    """A URL's host as an ASCII DNS name or IP literal (no brackets), or None if it is neither."""
    host = host.strip("[]").lower()
    if ":" in host:  # IPv6 literal; a zone id (%eth0) is refused with it
        if "%" in host:
            return None
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii").lower()  # also folds full-width digits and dots
        except UnicodeError:
            return None
    host = host[:-1] if host.endswith(".") else host  # "example.com." is "example.com"
    return host if _DNS_NAME.match(host) else None


def parse_ip(host: str) -> IPAddress | None:
    """The address a host literal means, including the legacy IPv4 spellings; None for names."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        pass
    if not host or not all(c in "0123456789abcdefx." for c in host):
        return None
    try:
        packed = socket.inet_aton(host)  # 2130706433, 0x7f000001, 0177.0.0.1, 127.1
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


def ipv4_meant(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, translated, compatible, NAT64), or None."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    head = ip.packed[:12]
    if head == _TRANSLATED or ip in _NAT64 or (head == bytes(12) and int(ip) > 1):  # ::a.b.c.d: not :: or ::1
        return ipaddress.IPv4Address(ip.packed[12:])
    return None


def tunnel_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4 or Teredo address embeds (its 6to4 router, or Teredo client), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
    return None


def _public_or_reason(ip: IPAddress) -> str | None:
    if any(ip.version == net.version and ip in net for net in BLOCKED):
        return "it points at a private, loopback, link-local or reserved address"
    if not ip.is_global or ip.is_multicast:
        return "it points at a non-public address"
    return None


def host_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("."):
        return host.endswith(pattern) or host == pattern[1:]
    return host == pattern
