from __future__ import annotations

import ipaddress

import pytest

from mmserve.media.net.policy import NetworkPolicy, normalize_host, parse_ip

POLICY = NetworkPolicy([], [], [])


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "224.0.0.251",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "198.18.0.1",
        "192.0.0.170",
        "192.0.2.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:8.8.8.8",
        "::127.0.0.1",
        "::ffff:0:a9fe:a9fe",  # IPv4-translated (SIIT, RFC 2765): 169.254.169.254
        "::ffff:0:7f00:1",
        "::ffff:0:808:808",  # translated forms are refused like mapped ones, public or not
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1",
        "64:ff9b:1::1",
        "2002:7f00:1::1",
        "2002:808:808::1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "100::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert POLICY.check_address(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert POLICY.check_address(ipaddress.ip_address(address)) is None


def test_allow_networks_admit_private_ranges_and_their_mapped_forms() -> None:
    policy = NetworkPolicy(["127.0.0.2/32", "fd00::/8"], [], [])
    for ok in ("127.0.0.2", "::ffff:127.0.0.2", "fd00::5"):
        assert policy.check_address(ipaddress.ip_address(ok)) is None
    for bad in ("127.0.0.1", "::ffff:127.0.0.1", "fc00::1"):
        assert policy.check_address(ipaddress.ip_address(bad)) is not None


def test_ipv4_meaning_forms_are_judged_by_their_ipv4_before_both_checks() -> None:
    policy = NetworkPolicy(["127.0.0.1/32"], [], [])
    for ok in ("127.0.0.1", "::ffff:127.0.0.1", "::ffff:0:127.0.0.1", "::127.0.0.1", "64:ff9b::127.0.0.1"):
        assert policy.check_address(ipaddress.ip_address(ok)) is None, ok
    for bad in ("127.0.0.2", "::ffff:0:127.0.0.2", "::ffff:0:a9fe:a9fe", "64:ff9b::a9fe:a9fe"):
        assert policy.check_address(ipaddress.ip_address(bad)) is not None, bad


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::1",  # 6to4 carrying 127.0.0.1: a /48 of other hosts behind a relay
        "2002:7f00:1:ffff::5",
        "2002:7f00:1::7f00:1",
        "2001:0:a9fe:a9fe:0:0:80ff:fffe",  # Teredo: client 127.0.0.1, server 169.254.169.254
        "2001:0:7f00:1:0:0:80ff:fffe",  # Teredo: client and server 127.0.0.1, still a tunnel
    ],
)
def test_an_allowed_ipv4_does_not_admit_tunnel_forms(address: str) -> None:
    # allow_networks ["127.0.0.1/32"] admitted every 6to4 and Teredo address embedding 127.0.0.1
    ip = ipaddress.ip_address(address)
    assert NetworkPolicy(["127.0.0.1/32"], [], []).check_address(ip) is not None
    assert NetworkPolicy(["2002::/16", "2001::/32"], [], []).check_address(ip) is None  # allowed as IPv6 only


def test_host_lists() -> None:
    policy = NetworkPolicy([], ["images.example.com", ".cdn.example"], ["bad.cdn.example"])
    assert policy.check_host("images.example.com") is None
    assert policy.check_host("a.cdn.example") is None and policy.check_host("cdn.example") is None
    assert "deny" in (policy.check_host("bad.cdn.example") or "")
    assert "allow" in (policy.check_host("other.example.com") or "")
    assert "allow" in (policy.check_host("evilcdn.example") or "")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("0x", None),
    ],
)
def test_parse_ip_reads_legacy_spellings(host: str, expected: str | None) -> None:
    ip = parse_ip(host)
    assert (str(ip) if ip else None) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", "127.0.0.1"),  # full-width, folded by IDNA
        ("b\u00fccher.example", "xn--bcher-kva.example"),
        ("::1", "::1"),
        ("[0:0::1]", "::1"),
        ("fe80::1%eth0", None),
        ("%31%32%37.0.0.1", None),
        ("a b.example", None),
        ("exa mple", None),
        ("-bad-.example", None),
        ("", None),
        ("a" * 64 + ".example", None),
    ],
)
def test_normalize_host(host: str, expected: str | None) -> None:
    assert normalize_host(host) == expected
