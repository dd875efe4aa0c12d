"""Slow and malformed clients against the real uvicorn server: 408/400 in the OpenAI envelope,
connections closed, echoed values clipped, field paths named once."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mmserve.api.app import create_app
from mmserve.catalog.catalog import Catalog
from mmserve.settings import LimitSettings, Settings
from tests.helpers.server import LiveServer

LIMITS = LimitSettings(header_timeout_s=0.5, body_idle_timeout_s=0.5, body_timeout_s=1.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("server"), limits=LIMITS)
    live = LiveServer(create_app(settings, Catalog([], base_dir=Path(".")))).start()
    yield live
    live.stop()


def _connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.settimeout(10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _envelope(raw: bytes, status: int) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), raw[:300]
    assert b"content-type: application/json" in head.lower(), head
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return dict(err)


def _post_head(length: int | str, extra: str = "") -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {length}\r\n{extra}\r\n"
    ).encode()


def test_a_body_that_stops_coming_is_a_408_and_the_connection_closes(server: LiveServer) -> None:
    with _connect(server) as sock:
        start = time.monotonic()
        sock.sendall(_post_head(100) + b'{"model": ')
        err = _envelope(_read_all(sock), 408)
        assert time.monotonic() - start < 8
    assert err["code"] == "request_timeout" and "body" in err["message"]


def test_a_body_dripped_slowly_is_cut_at_the_total_deadline(server: LiveServer) -> None:
    with _connect(server) as sock:
        start = time.monotonic()
        sock.sendall(_post_head(1000))
        raw = b""
        for _ in range(60):  # a byte every 0.2 s: never idle for long, never done
            try:
                sock.sendall(b" ")
            except OSError:  # closed by the server
                break
            sock.settimeout(0.2)
            try:
                raw += sock.recv(65536)
                if raw.endswith(b"}}"):
                    break
            except TimeoutError:
                pass
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            raw += _read_all(sock)
        elapsed = time.monotonic() - start
    assert _envelope(raw, 408)["code"] == "request_timeout"
    assert 1.0 < elapsed < 8


def test_headers_that_never_complete_are_a_408(server: LiveServer) -> None:
    with _connect(server) as sock:
        start = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        err = _envelope(_read_all(sock), 408)
        assert time.monotonic() - start < 8
    assert err["code"] == "request_timeout" and "headers" in err["message"]


def test_a_connection_that_sends_nothing_is_closed(server: LiveServer) -> None:
    with _connect(server) as sock:
        start = time.monotonic()
        _read_all(sock)  # returns when the server closes
        assert time.monotonic() - start < 8


@pytest.mark.parametrize(
    "head",
    [
        _post_head(-1),
        _post_head(5, "transfer-encoding: chunked\r\n"),
        _post_head("12abc"),
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),  # TLS spoken to plain HTTP
    ],
)
def test_malformed_http_is_a_400_in_the_envelope(server: LiveServer, head: bytes) -> None:
    with _connect(server) as sock:
        sock.sendall(head + b"hello")
        err = _envelope(_read_all(sock), 400)
    assert err["code"] == "invalid_http" and err["type"] == "invalid_request_error"


def test_normal_requests_are_untouched_by_the_deadlines(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
        time.sleep(0.8)  # idle between requests on a kept-alive connection is not a slow header
        r = client.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 404


def test_an_echoed_value_is_clipped(server: LiveServer) -> None:
    name = "m" * 3_000_000
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": name, "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert r.status_code == 404
    err = r.json()["error"]
    assert len(r.content) < 2000 and "mmmm" in err["message"] and "characters" in err["message"]
    assert err["message"].endswith("GET /v1/models lists the models this server serves.")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/v1/admin/keys/{v}"),  # an admin key id
        ("DELETE", "/v1/admin/keys/{v}"),
        ("GET", "/v1/{v}"),  # an unknown route
        ("GET", "/v1/responses/resp_x/input_items?after={v}"),
        ("GET", "/v1/responses/{v}"),
    ],
)
def test_values_echoed_by_every_surface_are_clipped(server: LiveServer, method: str, path: str) -> None:
    value = "v" * 30_000  # within the HTTP layer's line limit
    r = httpx.request(method, server.url + path.format(v=value), json={"name": "x"}, timeout=30)
    assert 400 <= r.status_code < 500 and len(r.content) < 3000, (r.status_code, r.content[:300])


def test_a_huge_unknown_field_name_is_clipped_in_param(server: LiveServer) -> None:
    key = "k" * 1_000_000
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {key: 1}},
        timeout=30,
    )
    assert r.status_code in (400, 404) and len(r.content) < 3000, r.content[:300]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "image_url", "image_url": {"url": "http://x/a.png", "detail": "ultra"}}, "image_url.detail"),
        ({"type": "image_url"}, "image_url"),
        ({"type": "text", "text": 5}, "text"),
        ({"type": "text", "text": "text", "extra": 1, "image_url": 3}, None),  # valid: extras are ignored
    ],
)
def test_field_paths_name_each_segment_once(server: LiveServer, part: dict, param: str | None) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]}
    r = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    if param is None:
        assert r.status_code == 404  # valid: it reached the model lookup
        return
    assert r.status_code == 400
    assert r.json()["error"]["param"] == f"messages[0].content[1].{param}"
