"""SafeFetcher details not covered by tests/security (which drives it through the API)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mmserve.errors import MediaFetchError
from mmserve.media.net.fetch import SafeFetcher
from mmserve.settings import FetchSettings
from tests.helpers.httpserver import TargetServer
from tests.helpers.images import image_bytes

PNG = image_bytes()


async def test_disabled_fetching() -> None:
    with pytest.raises(MediaFetchError) as e:
        await SafeFetcher(FetchSettings(enabled=False)).fetch("http://93.184.216.34/x.png", param="p")
    assert e.value.code == "url_fetch_disabled" and "base64" in e.value.message


async def test_ipv6_loopback_only_when_allowlisted() -> None:
    with TargetServer("::1") as target:
        target.routes["/a.png"] = (200, {"Content-Type": "image/png"}, PNG)
        with pytest.raises(MediaFetchError):
            await SafeFetcher(FetchSettings()).fetch(target.url("/a.png"), param="p")
        assert target.requests == []
        fetcher = SafeFetcher(FetchSettings(allow_networks=["::1/128"]))
        got = await fetcher.fetch(target.url("/a.png"), param="p")
        assert got.data == PNG and got.content_type == "image/png"
        assert target.requests[0][1]["Host"] == f"[::1]:{target.port}"


async def test_an_injected_transport_is_reused_not_closed() -> None:
    with TargetServer() as target:
        target.routes["/a.png"] = (200, {}, PNG)
        transport = httpx.AsyncHTTPTransport()
        fetcher = SafeFetcher(FetchSettings(allow_networks=["127.0.0.1/32"]), transport=transport)
        for _ in range(2):
            assert (await fetcher.fetch(target.url("/a.png"), param="p")).data == PNG
        await transport.aclose()


async def test_concurrency_is_capped() -> None:
    running = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return httpx.Response(200, content=PNG)

    fetcher = SafeFetcher(FetchSettings(max_concurrency=2), transport=httpx.MockTransport(handler))
    got = await asyncio.gather(*(fetcher.fetch(f"http://93.184.216.34/{i}.png", param="p") for i in range(6)))
    assert [g.data for g in got] == [PNG] * 6
    assert peak == 2


async def test_host_lists_apply_to_every_hop() -> None:
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["host"])
        return httpx.Response(302, headers={"Location": "http://tracker.evil.test/x.png"})

    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    fetcher = SafeFetcher(
        FetchSettings(deny_hosts=[".evil.test"]), resolver=resolver, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(MediaFetchError) as e:
        await fetcher.fetch("http://images.example/cat.png", param="p")
    assert e.value.code == "url_refused" and "deny list" in e.value.message and "redirected" in e.value.message
    assert seen == ["images.example"]
    allow_only = SafeFetcher(FetchSettings(allow_hosts=["images.example"]), resolver=resolver)
    with pytest.raises(MediaFetchError, match="allow list"):
        await allow_only.fetch("http://other.example/cat.png", param="p")


@pytest.mark.parametrize("answers", [OSError("nxdomain"), [], ["not-an-ip"]])
async def test_names_that_do_not_resolve(answers: object) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        if isinstance(answers, Exception):
            raise answers
        return answers  # type: ignore[return-value]

    with pytest.raises(MediaFetchError) as e:
        await SafeFetcher(FetchSettings(), resolver=resolver).fetch("http://nowhere.example/x", param="p")
    assert e.value.code == "url_unresolvable"


async def test_total_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=PNG)

    fetcher = SafeFetcher(FetchSettings(total_timeout_s=0.2), transport=httpx.MockTransport(handler))
    with pytest.raises(MediaFetchError) as e:
        await fetcher.fetch("http://93.184.216.34/slow.png", param="p")
    assert e.value.code == "url_timeout" and "0.2 s" in e.value.message
