"""The upstream client's wire: one send per request, idle-connection checks, body lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpcore
import pytest

from mmserve.engines.upstream.client import UpstreamClient, UpstreamOptions
from mmserve.engines.upstream.wire import UpstreamResponse
from tests.helpers.fake_provider import FakeProvider

KEY_ENV = "MMSERVE_TEST_WIRE_KEY"


class _Recording(httpcore.AsyncNetworkBackend):
    """anyio's sockets, with every write counted."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.writes: list[bytes] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_tcp(host, port, *args, **kwargs)
        writes = self.writes

        class Stream(httpcore.AsyncNetworkStream):
            async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
                return await stream.read(max_bytes, timeout)

            async def write(self, buffer: bytes, timeout: float | None = None) -> None:
                writes.append(buffer)
                await stream.write(buffer, timeout)

            async def aclose(self) -> None:
                await stream.aclose()

            def get_extra_info(self, info: str) -> Any:
                return stream.get_extra_info(info)

        return Stream()

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as p:
        yield p


async def test_a_request_leaves_in_one_write_and_its_connection_is_kept(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, fake.key)
    backend = _Recording()
    c = UpstreamClient("remote", UpstreamOptions(base_url=fake.base_url, api_key_env=KEY_ENV), backend)
    c.check_key()
    body = {"model": "m", "prompt": "a red square", "n": 1, "size": "8x8"}
    for _ in range(3):
        assert (await c.request_json("POST", "/images/generations", json=body))["data"]
    await c.aclose()
    assert len(backend.writes) == 3  # head and body together, one write per request
    head, _, sent = backend.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/images/generations HTTP/1.1\r\n")
    assert f"authorization: Bearer {fake.key}".lower().encode() in head.lower()
    assert sent == b'{"model":"m","prompt":"a red square","n":1,"size":"8x8"}'
    assert fake.requests[-1]["prompt"] == "a red square"


async def test_lines_are_split_across_chunks_crlf_and_utf8_alike() -> None:
    text = "data: héllo\r\n\r\ndata: wörld\nlast".encode()
    cut = text.index("é".encode()) + 1  # inside the two bytes of é
    chunks = [text[:cut], text[cut : cut + 5], text[cut + 5 :]]
    raw = httpcore.Response(200, headers=[(b"Content-Type", b"text/event-stream")], content=_Stream(chunks))
    lines = [line async for line in UpstreamResponse(raw).aiter_lines()]
    assert lines == ["data: héllo", "", "data: wörld", "last"]
    assert UpstreamResponse(raw).headers == {"content-type": "text/event-stream"}


class _Stream:  # an async byte stream
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            yield chunk
