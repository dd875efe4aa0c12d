"""With auth on, the console's shell is open (it holds no data) and nothing else is: raw paths that
try to reach the API through /console (dot segments, encoded dots, look-alike prefixes) get no data."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmserve.api.app import create_app
from mmserve.catalog.loader import parse_catalog
from mmserve.settings import Settings
from tests.helpers.server import LiveServer

CATALOG = """
models:
  - id: secret-model
    task: speech
    engine: espeak-ng
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data: Path = tmp_path_factory.mktemp("console-paths")
    settings = Settings(data_dir=data, auth=True, admin_key="admin-secret")
    live = LiveServer(create_app(settings, parse_catalog(CATALOG, file="c.yaml", base_dir=data))).start()
    yield live
    live.stop()


def _raw_get(live: LiveServer, target: str) -> tuple[int, bytes]:
    """A request line sent as written: HTTP clients would normalise the dot segments away."""
    with socket.create_connection((live.host, live.port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_shell_is_open_and_sends_its_security_headers(server: LiveServer) -> None:
    status, body = _raw_get(server, "/console/")
    assert status == 200 and b"<title>mmserve console</title>" in body
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"GET /console/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = s.recv(65536).split(b"\r\n\r\n")[0].decode().lower()
    assert "content-security-policy: default-src 'self'; script-src 'self'" in head
    assert "x-content-type-options: nosniff" in head and "referrer-policy: no-referrer" in head
    assert _raw_get(server, "/console")[0] in (301, 302, 307, 308)


@pytest.mark.parametrize(
    "target",
    [
        "/console/../v1/models",
        "/console/%2e%2e/v1/models",
        "/console/..%2fv1/models",
        "/console/%2e%2e%2fv1%2fmodels",
        "/console//v1/models",
        "/consoles/../v1/models",
        "/consolev1/models",
        "/console/../../v1/models",
        "/console/..;/v1/models",
    ],
)
def test_no_path_through_the_console_reaches_the_api(server: LiveServer, target: str) -> None:
    status, body = _raw_get(server, target)
    assert b"secret-model" not in body, (target, status)
    assert status in (400, 401, 404), (target, status, body[:200])


def test_the_api_itself_still_needs_a_key(server: LiveServer) -> None:
    assert _raw_get(server, "/v1/models")[0] == 401
    assert _raw_get(server, "/v1/me")[0] == 401
