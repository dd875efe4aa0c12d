"""SSRF: every refused image URL leaves the hostile targets with zero requests.

Each URL points at a real loopback target's port, so a URL that slipped through would be
counted there; the recording transport proves no connection was even attempted.
"""

from __future__ import annotations

import pytest

from tests.helpers.images import image_bytes
from tests.security.conftest import SecurityServer, Targets, error_of, post_chat

PARAM = "messages[0].content[1].image_url"
PNG = (200, {"Content-Type": "image/png"}, image_bytes((64, 48)))

# {P}: the port of 127.0.0.1 (private) and 127.0.0.2 (allowed); {Q}: the port of [::1]
REFUSED = [
    # IPv4 loopback in every spelling resolvers accept
    "http://127.0.0.1:{P}/secret",
    "http://2130706433:{P}/secret",
    "http://0x7f000001:{P}/secret",
    "http://0x7f.0x0.0x0.0x1:{P}/secret",
    "http://0177.0.0.1:{P}/secret",
    "http://017700000001:{P}/secret",
    "http://127.1:{P}/secret",
    "http://127.0.1:{P}/secret",
    "http://127.0.0.1.:{P}/secret",
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{P}/secret",  # full-width digits
    "http://0:{P}/secret",
    "http://0.0.0.0:{P}/secret",
    # IPv6 loopback and IPv6 forms that carry an IPv4 address
    "http://[::1]:{Q}/secret",
    "http://[0:0:0:0:0:0:0:1]:{Q}/secret",
    "http://[::ffff:127.0.0.1]:{P}/secret",
    "http://[::ffff:7f00:1]:{P}/secret",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{P}/secret",
    "http://[::127.0.0.1]:{P}/secret",
    "http://[64:ff9b::127.0.0.1]:{P}/secret",
    "http://[2002:7f00:1::1]:{P}/secret",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{P}/secret",
    "http://[fe80::1]:{P}/secret",
    "http://[fe80::1%25lo]:{Q}/secret",
    "http://[fc00::1]:{P}/secret",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[ff02::1]:{P}/secret",
    "http://[::]:{Q}/secret",
    # private, link-local, metadata, CGNAT, multicast, broadcast, reserved
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1:{P}/secret",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "http://224.0.0.1:{P}/secret",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    # names whose answers are not public (every answer is checked, not just the first)
    "http://localhost:{P}/secret",
    "http://LOCALHOST.:{P}/secret",
    "http://internal.test:{P}/secret",
    "http://metadata.test/latest/meta-data/",
    "http://mixed.test:{P}/secret",
    "http://v6.test:{Q}/secret",
    "http://mapped.test:{P}/secret",
    "https://internal.test/secret",
    # parser confusion: backslashes, userinfo, encoded or odd hosts, whitespace
    "http://evil.test\\@127.0.0.1:{P}/secret",
    "http://user@127.0.0.2:{P}/img.png",
    "http://user:pass@127.0.0.2:{P}/img.png",
    "http://127.0.0.2:{P}@127.0.0.1:{P}/secret",
    "http://%31%32%37.0.0.1:{P}/secret",
    "http://127.0.0.1%00.evil.test:{P}/secret",
    "http://127.0.0.1:{P} /secret",
    "http://127.0.0.1:{P}/sec\tret",
    "http://127.0.0.1:{P}#@allowed.test/",
]


def _dns(sec: SecurityServer) -> None:
    sec.dns.set("localhost", ["127.0.0.1", "::1"])
    sec.dns.set("internal.test", ["10.1.2.3"])
    sec.dns.set("metadata.test", ["169.254.169.254"])
    sec.dns.set("mixed.test", ["127.0.0.2", "127.0.0.1"])  # one allowed answer does not make it safe
    sec.dns.set("v6.test", ["::1"])
    sec.dns.set("mapped.test", ["::ffff:127.0.0.1"])
    sec.dns.set("allowed.test", ["127.0.0.2"])


def _assert_untouched(sec: SecurityServer, targets: Targets) -> None:
    assert sec.transport.connections == []
    for target in targets.all():
        assert target.requests == [], target.host


@pytest.mark.parametrize("template", REFUSED)
def test_refused_url_never_reaches_the_target(sec: SecurityServer, targets: Targets, template: str) -> None:
    _dns(sec)
    for t in targets.all():
        t.routes["/secret"] = PNG
        t.routes["/img.png"] = PNG
    url = template.format(P=targets.port, Q=targets.private6.port)
    err = error_of(post_chat(sec, url), 422)
    assert err["param"] == PARAM
    assert err["code"] == "url_refused", err
    assert err["message"].startswith("The URL was refused: ")
    for leak in ("127.0.0.1", "10.1.2.3", "169.254", "::1"):  # never the resolved address
        assert leak not in err["message"]
    _assert_untouched(sec, targets)


NOT_URLS = [
    "http:\\\\127.0.0.1:{P}/secret",
    "http:/127.0.0.1:{P}/secret",
    "gopher://127.0.0.1:{P}/_x",
    "http://127.0.0.2:{P}%40127.0.0.1:{P}/secret",  # not a valid port
]


@pytest.mark.parametrize("template", NOT_URLS)
def test_malformed_urls_are_400(sec: SecurityServer, targets: Targets, template: str) -> None:
    err = error_of(post_chat(sec, template.format(P=targets.port)), 400)
    assert err["param"] == PARAM and err["code"] == "invalid_image_url"
    _assert_untouched(sec, targets)


REDIRECTS = [
    "http://127.0.0.1:{P}/secret",
    "http://2130706433:{P}/secret",
    "http://[::1]:{Q}/secret",
    "http://[::ffff:127.0.0.1]:{P}/secret",
    "//127.0.0.1:{P}/secret",  # scheme-relative
    "http://localhost:{P}/secret",
    "http://internal.test/secret",
    "http://169.254.169.254/latest/meta-data/",
    "http://user@127.0.0.2:{P}/img.png",
    "http://127.0.0.2:{P}\\@127.0.0.1:{P}/secret",
]


@pytest.mark.parametrize("location", REDIRECTS)
def test_redirect_to_refused_url_is_checked(sec: SecurityServer, targets: Targets, location: str) -> None:
    _dns(sec)
    targets.private.routes["/secret"] = PNG
    targets.allowed.routes["/hop1"] = (302, {"Location": "/hop2"}, b"")
    targets.allowed.routes["/hop2"] = (
        307,
        {"Location": location.format(P=targets.port, Q=targets.private6.port)},
        b"",
    )
    err = error_of(post_chat(sec, targets.allowed.url("/hop1")), 422)
    assert err["param"] == PARAM and err["code"] == "url_refused"
    assert "redirected" in err["message"]
    assert targets.allowed.paths() == ["/hop1", "/hop2"]
    assert targets.private.requests == [] and targets.private6.requests == []


def test_redirect_to_another_scheme_and_loops(sec: SecurityServer, targets: Targets) -> None:
    targets.allowed.routes["/ftp"] = (302, {"Location": "ftp://127.0.0.2/x.png"}, b"")
    err = error_of(post_chat(sec, targets.allowed.url("/ftp")), 422)
    assert err["code"] == "url_redirect_invalid" and "http(s)" in err["message"]
    targets.allowed.routes["/loop"] = (301, {"Location": "/loop"}, b"")
    err = error_of(post_chat(sec, targets.allowed.url("/loop")), 422)
    assert err["code"] == "url_too_many_redirects" and "3" in err["message"]
    assert targets.allowed.paths().count("/loop") == 4  # the first request and 3 redirects
    targets.allowed.routes["/nowhere"] = (302, {}, b"")
    assert error_of(post_chat(sec, targets.allowed.url("/nowhere")), 422)["code"] == "url_redirect_invalid"


BAD_LOCATIONS = [
    "http:\\\\127.0.0.2:{P}\\x",  # http:\\127.0.0.2:P\x
    "javascript:alert(1)",
    "data:image/png;base64,iVBORw0KGgo=",
    "http://[::1",
    "http://127.0.0.2:99999/x.png",
    "http://%zz/x.png",
    "http://exa mple.com/x.png",
    "mailto:someone@example.com",
]


@pytest.mark.parametrize("location", BAD_LOCATIONS)
def test_a_malformed_redirect_location_is_a_clean_4xx(sec: SecurityServer, targets: Targets, location: str) -> None:
    # httpx parses Location itself (even with follow_redirects=False): some values raised
    # httpx.InvalidURL out of send() and the request was a 500 with a traceback in the log.
    targets.allowed.routes["/bad"] = (302, {"Location": location.format(P=targets.port)}, b"")
    err = error_of(post_chat(sec, targets.allowed.url("/bad")), 422)
    assert err["param"] == PARAM and err["code"] in ("url_redirect_invalid", "url_refused"), err
    assert "redirect" in err["message"]
    assert targets.allowed.paths() == ["/bad"] and targets.private.requests == []


def test_allowlisted_loopback_works_with_redirects(sec: SecurityServer, targets: Targets) -> None:
    targets.allowed.routes["/img.png"] = PNG
    targets.allowed.routes["/go"] = (302, {"Location": "/img.png"}, b"")
    resp = post_chat(sec, targets.allowed.url("/go"))
    assert resp.status_code == 200, resp.text
    assert targets.allowed.paths() == ["/go", "/img.png"]
    assert [c.host for c in sec.transport.connections] == ["127.0.0.2", "127.0.0.2"]


def test_dns_rebinding_connects_to_the_checked_address(sec: SecurityServer, targets: Targets) -> None:
    """The name answers allowed first, private after: only the first (checked) answer is used."""
    sec.dns.set("rebind.test", ["127.0.0.2"], ["127.0.0.1"])
    targets.allowed.routes["/img.png"] = PNG
    targets.private.routes["/img.png"] = PNG  # the trap: same port, same path
    resp = post_chat(sec, f"http://rebind.test:{targets.port}/img.png")
    assert resp.status_code == 200, resp.text
    assert sec.dns.calls == ["rebind.test"]  # resolved once
    assert targets.allowed.paths() == ["/img.png"]
    assert targets.private.requests == []
    assert targets.allowed.requests[0][1]["Host"] == f"rebind.test:{targets.port}"  # the name, not the IP


def test_public_then_private_answer_never_reaches_private(sec: SecurityServer, targets: Targets) -> None:
    sec.dns.set("flip.test", ["93.184.216.34"], ["127.0.0.1"])
    targets.private.routes["/img.png"] = PNG
    err = error_of(post_chat(sec, f"http://flip.test:{targets.port}/img.png"), 422)
    assert err["code"] == "url_unreachable"  # the checked public address (no internet in tests)
    assert [(c.host, c.host_header) for c in sec.transport.connections] == [
        ("93.184.216.34", f"flip.test:{targets.port}")
    ]
    assert sec.dns.calls == ["flip.test"]
    assert targets.private.requests == []


def test_https_pins_the_address_and_keeps_the_name_for_tls(sec: SecurityServer, targets: Targets) -> None:
    sec.dns.set("images.example", ["93.184.216.34"])
    error_of(post_chat(sec, "https://images.example/cat.png"), 422)
    (conn,) = sec.transport.connections
    assert (conn.host, conn.port, conn.host_header, conn.sni) == (
        "93.184.216.34",
        443,
        "images.example",
        "images.example",
    )


def test_fragment_tricks_use_the_real_host(sec: SecurityServer, targets: Targets) -> None:
    sec.dns.set("evil.test", ["93.184.216.34"])
    error_of(post_chat(sec, f"http://evil.test#@127.0.0.1:{targets.port}/secret"), 422)
    assert [c.host for c in sec.transport.connections] == ["93.184.216.34"]
    assert [c.path for c in sec.transport.connections] == ["/"]  # the fragment is never sent
    assert targets.private.requests == []


def test_card_that_forbids_links_fetches_nothing(sec: SecurityServer, targets: Targets) -> None:
    targets.allowed.routes["/img.png"] = PNG
    err = error_of(post_chat(sec, targets.allowed.url("/img.png"), model="vlm-base64-only"), 422)
    assert err["code"] == "image_urls_disabled" and "vlm-base64-only" in err["message"]
    assert "data:image/png;base64" in err["message"]
    _assert_untouched(sec, targets)


@pytest.mark.parametrize(
    ("route", "status", "code"),
    [
        ((200, {"X-Test-Delay": "2", "Content-Type": "image/png"}, image_bytes()), 422, "url_timeout"),
        ((500, {}, b"boom"), 422, "url_bad_status"),
        ((404, {}, b"nope"), 422, "url_bad_status"),
        ((200, {"Content-Length": str(600 * 1024)}, b""), 413, "url_content_too_large"),
        ((200, {"X-Test-Stream": "40"}, b"\x89PNG" + bytes(16 * 1024)), 413, "url_content_too_large"),
        ((200, {"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00"), 422, "url_bad_content"),
        ((200, {"Content-Type": "image/png"}, b""), 400, "invalid_image"),
        ((200, {"Content-Type": "image/png"}, b"<!doctype html><html>Log in</html>"), 415, "unsupported_media_type"),
    ],
)
def test_unusable_responses(
    sec: SecurityServer, targets: Targets, route: tuple[int, dict[str, str], bytes], status: int, code: str
) -> None:
    targets.allowed.routes["/img"] = route
    err = error_of(post_chat(sec, targets.allowed.url("/img")), status)
    assert err["param"] == PARAM and err["code"] == code
    if code == "url_bad_status":
        assert f"HTTP {route[0]}" in err["message"]
    if status == 415:
        assert "HTML page" in err["message"]
