"""A live mmserve with an injectable resolver, hostile web servers on loopback, and small limits.

Targets: ``private`` on 127.0.0.1:P (stands for every internal service), ``allowed`` on
127.0.0.2:P (the only network the server's allowlist admits: how tests fetch images), both
on the same port P so that a DNS answer can switch between them, and ``private6`` on
[::1]. Every outgoing connection the server makes goes through a recording transport,
which also refuses anything off loopback (tests never touch the internet).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.media.net.fetch import SafeFetcher
from mmserve.settings import FetchSettings, LimitSettings, Settings
from tests.helpers.hostile import decode_time_limit
from tests.helpers.httpserver import TargetServer
from tests.helpers.server import LiveServer

MiB = 1024 * 1024

SECURITY_CATALOG = {
    "models": [
        {
            "id": "demo-vlm",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:vlm",
            "capabilities": {"vision": True, "max_images": 4, "video": True, "context_length": 2048},
            "limits": {"max_output_tokens": 16, "max_input_video_seconds": 5, "max_video_frames": 4},
            "deployment": {"mode": "dedicated", "max_concurrency": 4},
        },
        {
            "id": "vlm-base64-only",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:vlm",
            "capabilities": {"multimodal_enabled": True, "max_images": 2},
            "limits": {"max_output_tokens": 16, "allow_image_urls": False},
        },
        {
            "id": "vlm-gif",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:vlm",
            "capabilities": {"vision": True, "max_images": 1},
            "limits": {
                "max_output_tokens": 16,
                "image_formats": ["png", "jpeg", "webp", "gif"],
                "min_image_side": 16,
            },
        },
        {
            "id": "demo-embed",
            "task": "embedding",
            "engine": "transformers-embedding",
            "source": "demo:clip",
            "capabilities": {"vision": True, "max_images": 4, "embedding_dimensions": 32, "matryoshka": True},
            "limits": {"max_inputs": 16},
        },
    ]
}


class FakeDNS:
    """Answers from a table; a name may list several answers, one per successive lookup."""

    def __init__(self) -> None:
        self.table: dict[str, list[list[str]]] = {}
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def set(self, name: str, *answers: list[str]) -> None:
        with self._lock:
            self.table[name] = [list(a) for a in answers]

    async def __call__(self, host: str, port: int) -> list[str]:
        with self._lock:
            self.calls.append(host)
            answers = self.table.get(host)
            if not answers:
                raise OSError("name does not resolve")
            return answers.pop(0) if len(answers) > 1 else answers[0]


@dataclass
class Connection:
    host: str
    port: int
    path: str
    host_header: str
    sni: str | None


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """Records where every request really connects; only loopback is reachable."""

    connections: list[Connection] = field(default_factory=list)
    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        sni = request.extensions.get("sni_hostname")
        self.connections.append(Connection(url.host, port, url.raw_path.decode(), request.headers["host"], sni))
        if not ipaddress.ip_address(request.url.host).is_loopback:
            raise httpx.ConnectError("tests never leave loopback")
        return await self.inner.handle_async_request(request)


@dataclass
class Targets:
    private: TargetServer  # 127.0.0.1:P
    allowed: TargetServer  # 127.0.0.2:P
    private6: TargetServer  # [::1]:Q

    @property
    def port(self) -> int:
        return self.private.port

    def all(self) -> list[TargetServer]:
        return [self.private, self.allowed, self.private6]

    def clear(self) -> None:
        for t in self.all():
            t.clear()
            t.routes.clear()


@pytest.fixture(scope="session")
def targets() -> Iterator[Targets]:
    for _ in range(20):
        private = TargetServer("127.0.0.1")
        try:
            allowed = TargetServer("127.0.0.2", private.port)
            break
        except OSError:  # that port is taken on 127.0.0.2: try another
            private.httpd.server_close()
    else:
        raise RuntimeError("no common free port on 127.0.0.1 and 127.0.0.2")
    t = Targets(private.start(), allowed.start(), TargetServer("::1").start())
    yield t
    for server in t.all():
        server.stop()


@dataclass
class SecurityServer:
    url: str
    dns: FakeDNS
    transport: RecordingTransport
    live: LiveServer

    def reset(self) -> None:
        self.dns.calls.clear()
        self.transport.connections.clear()


@pytest.fixture(scope="session")
def security_server(data_dir: Path) -> Iterator[SecurityServer]:
    catalog_file = data_dir / "security-catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(SECURITY_CATALOG))
    settings = Settings(
        data_dir=data_dir,
        config=catalog_file,
        fetch=FetchSettings(
            allow_networks=["127.0.0.2/32"],
            connect_timeout_s=2,
            read_timeout_s=1,
            total_timeout_s=3,
            max_bytes=512 * 1024,
            max_redirects=3,
        ),
        limits=LimitSettings(
            max_request_bytes=3 * MiB,
            max_data_uri_bytes=1 * MiB,
            decode_timeout_s=decode_time_limit(),
            max_decode_concurrency=2,
            max_video_decoded_frames=600,
            max_video_side=1920,
            max_video_pixels=1920 * 1080,
        ),
    )
    dns, transport = FakeDNS(), RecordingTransport()
    fetcher = SafeFetcher(settings.fetch, resolver=dns, transport=transport)
    live = LiveServer(create_app(settings, load_catalog(catalog_file), fetcher=fetcher)).start()
    yield SecurityServer(live.url, dns, transport, live)
    live.stop()


@pytest.fixture
def sec(security_server: SecurityServer, targets: Targets) -> Iterator[SecurityServer]:
    security_server.reset()
    targets.clear()
    yield security_server


def chat_body(url: str, *, model: str = "demo-vlm", detail: str | None = None) -> dict:
    image: dict = {"url": url}
    if detail:
        image["detail"] = detail
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": image}],
            }
        ],
        "max_tokens": 2,
    }


def post_chat(server: SecurityServer, url: str, **kw: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=chat_body(url, **kw), timeout=60)


def error_of(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "Traceback" not in err["message"] and "PIL" not in err["message"] and "httpx" not in err["message"]
    return err
