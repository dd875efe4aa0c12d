"""Signed artifact links served by a live server: Range, forgery, expiry, proxies."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from mmserve.api.app import create_app
from mmserve.api.state import AppState
from mmserve.catalog.catalog import Catalog
from mmserve.settings import Settings
from mmserve.storage.artifacts import ArtifactMeta
from mmserve.storage.signing import artifact_url, public_base_url
from tests.helpers.server import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("artifacts")
    app = create_app(Settings(data_dir=data), Catalog([], base_dir=Path(".")))
    srv = LiveServer(app).start()
    yield srv
    srv.stop()


def _state(server: LiveServer) -> AppState:
    state: AppState = server.app.state.mm
    return state


def _request(headers: dict[str, str], client: str = "127.0.0.1") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": raw,
        "client": (client, 5000),
        "server": ("127.0.0.1", 8000),
        "scheme": "http",
        "root_path": "",
    }
    return Request(scope)


def test_files_larger_than_a_read_chunk_come_whole_and_by_range(server: LiveServer) -> None:
    state = _state(server)
    data = os.urandom(5 * (1 << 20) + 12345)  # several 1 MiB read chunks, and a partial one
    art = state.artifacts.put_bytes(data, ArtifactMeta("video/mp4", filename="v.mp4"))
    url = f"{server.url}/v1/artifacts/{art.id}?{state.signer.query(art.id, 60)}"
    whole = httpx.get(url, timeout=60)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-length"] == str(len(data)) and whole.headers["accept-ranges"] == "bytes"
    start, end = (1 << 20) - 7, 3 * (1 << 20) + 9  # across chunk boundaries
    part = httpx.get(url, headers={"Range": f"bytes={start}-{end}"}, timeout=60)
    assert part.status_code == 206 and part.content == data[start : end + 1]
    assert part.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
    tail = httpx.get(url, headers={"Range": "bytes=-100"}, timeout=60)
    assert tail.status_code == 206 and tail.content == data[-100:]
    several = httpx.get(url, headers={"Range": f"bytes=0-9,{len(data) - 10}-"}, timeout=60)
    assert several.status_code == 206 and several.headers["content-type"].startswith("multipart/byteranges")
    assert data[:10] in several.content and data[-10:] in several.content


def test_signed_link_downloads_with_range(server: LiveServer) -> None:
    state = _state(server)
    data = bytes(range(256)) * 40
    art = state.artifacts.put_bytes(data, ArtifactMeta("image/png", filename="x.png"))
    url = f"{server.url}/v1/artifacts/{art.id}?{state.signer.query(art.id, 60)}"
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "image/png"
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]


def test_forged_unsigned_and_expired_links(server: LiveServer) -> None:
    state = _state(server)
    art = state.artifacts.put_bytes(b"secret", ArtifactMeta("text/plain"))
    base = f"{server.url}/v1/artifacts/{art.id}"
    assert httpx.get(base).status_code == 403
    assert httpx.get(base + "?expires=9999999999&signature=" + "0" * 64).status_code == 403
    r = httpx.get(f"{base}?expires=1&signature={state.signer.signature(art.id, 1)}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "link_expired"
    state.artifacts.delete(art.id)
    r = httpx.get(f"{base}?{state.signer.query(art.id, 60)}")
    assert r.status_code == 404 and "error" in r.json()


def test_public_base_url_behind_proxy() -> None:
    s = Settings(trusted_proxies=["10.0.0.0/8"])
    fwd = {
        "host": "internal:8000",
        "x-forwarded-host": "api.example.com",
        "x-forwarded-proto": "https",
        "x-forwarded-prefix": "/mm",
    }
    assert public_base_url(_request(fwd, client="10.1.2.3"), s) == "https://api.example.com/mm"
    # an untrusted peer cannot steer the links
    assert public_base_url(_request(fwd, client="203.0.113.9"), s) == "http://internal:8000"
    configured = Settings(public_base_url="https://cdn.example.org/")
    assert public_base_url(_request(fwd, client="10.1.2.3"), configured) == "https://cdn.example.org"


def test_artifact_url_shape(server: LiveServer) -> None:
    state = _state(server)
    url = artifact_url(_request({"host": "h:1"}), state.settings, state.signer, "art_ab12", 30)
    assert url.startswith("http://h:1/v1/artifacts/art_ab12?expires=") and "&signature=" in url
    assert "/" not in url.split("?")[1] and str(state.settings.data_dir) not in url


@pytest.mark.parametrize(
    "query",
    [
        "expires=%C2%B2&signature=ab",  # "²" is a digit to str.isdigit(), not to int()
        "expires=" + "9" * 5000 + "&signature=ab",  # beyond int()'s digit limit
        "expires=9999999999&signature=%C3%A9",  # compare_digest refuses non-ASCII text
        "expires=-5&signature=ab",
    ],
)
def test_malformed_signed_queries_are_403(server: LiveServer, query: str) -> None:
    state = _state(server)
    art = state.artifacts.put_bytes(b"x", ArtifactMeta("text/plain"))
    r = httpx.get(f"{server.url}/v1/artifacts/{art.id}?{query}")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=5-2", "items=0-1", "bytes="])
def test_malformed_or_foreign_ranges_get_the_whole_file(server: LiveServer, header: str) -> None:
    # RFC 9110: unknown units MUST be ignored, invalid ranges MAY be; Starlette sent a plain-text 400
    state = _state(server)
    art = state.artifacts.put_bytes(b"0123456789", ArtifactMeta("image/png"))
    r = httpx.get(f"{server.url}/v1/artifacts/{art.id}?{state.signer.query(art.id, 60)}", headers={"Range": header})
    assert r.status_code == 200 and r.content == b"0123456789" and r.headers["content-type"] == "image/png"
    unsatisfiable = httpx.get(r.url, headers={"Range": "bytes=100-200"})
    assert unsatisfiable.status_code == 416 and unsatisfiable.headers["content-range"] == "bytes */10"
