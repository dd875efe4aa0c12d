"""HTTPS: the fetcher connects to the checked IP yet verifies the certificate against the name."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest
import trustme

from mmserve.errors import MediaFetchError
from mmserve.media.net.fetch import SafeFetcher
from mmserve.settings import FetchSettings
from tests.helpers.httpserver import TargetServer
from tests.helpers.images import image_bytes

PNG = image_bytes()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_target(ca: trustme.CA) -> Iterator[TargetServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("images.test").configure_cert(context)
    with TargetServer("127.0.0.2", tls=context) as target:
        target.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, PNG)
        yield target


@pytest.fixture
def fetcher(ca: trustme.CA) -> SafeFetcher:
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def resolver(host: str, port: int) -> list[str]:
        return {"images.test": ["127.0.0.2"], "other.test": ["127.0.0.2"]}[host]

    return SafeFetcher(
        FetchSettings(allow_networks=["127.0.0.2/32"]),
        resolver=resolver,
        transport=httpx.AsyncHTTPTransport(verify=client_context),
    )


async def test_https_by_name_to_the_pinned_address(tls_target: TargetServer, fetcher: SafeFetcher) -> None:
    tls_target.clear()
    got = await fetcher.fetch(f"https://images.test:{tls_target.port}/cat.png", param="p")
    assert got.data == PNG
    assert tls_target.requests[0][1]["Host"] == f"images.test:{tls_target.port}"


@pytest.mark.parametrize("host", ["other.test", "127.0.0.2"])
async def test_a_certificate_for_another_name_is_refused(
    tls_target: TargetServer, fetcher: SafeFetcher, host: str
) -> None:
    tls_target.clear()
    with pytest.raises(MediaFetchError) as e:
        await fetcher.fetch(f"https://{host}:{tls_target.port}/cat.png", param="p")
    assert e.value.code == "url_unreachable"
    assert tls_target.requests == []  # the TLS handshake failed: no request was sent
