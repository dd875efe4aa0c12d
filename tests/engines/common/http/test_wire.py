"""The upstream client's wire: one send per request, idle-connection checks, body lines."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from mmserve.engines.common.http.pool import open_connection
from mmserve.engines.common.http.wire import Connection, HTTPResponse
from mmserve.engines.upstream.client import UpstreamClient, UpstreamOptions
from mmserve.errors import UpstreamError
from tests.helpers.fake_provider import FakeProvider

KEY_ENV = "MMSERVE_TEST_WIRE_KEY"


class _Recording:
    """The default connector, with every write to the provider counted."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def __call__(self, factory: Any, host: str, port: int, tls: Any) -> tuple[Any, Connection]:
        transport, conn = await open_connection(factory, host, port, tls)
        writes = self.writes

        class Transport(asyncio.Transport):
            def write(self, data: Any) -> None:
                writes.append(bytes(data))
                transport.write(data)

            def __getattribute__(self, name: str) -> Any:
                if name == "write":
                    return object.__getattribute__(self, name)
                return getattr(transport, name)

        return Transport(), conn


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
    resp = HTTPResponse(200, [(b"Content-Type", b"text/event-stream")], _Body(chunks))
    lines = [line async for line in resp.aiter_lines()]
    assert lines == ["data: héllo", "", "data: wörld", "last"]
    assert resp.headers == {"content-type": "text/event-stream"}


class _Body:  # a body's pieces, as a connection hands them out
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def next_chunk(self) -> bytes | None:
        return self.chunks.pop(0) if self.chunks else None

    def close(self) -> None:
        pass


class _RawServer:
    """A loopback HTTP/1.1 'provider' answering each request with the next of ``answers`` (raw bytes);
    ``b"CLOSE"`` closes the connection instead, and so does every answer with ``close``. It counts
    the connections it accepted."""

    def __init__(self, answers: list[bytes], close: bool = False) -> None:
        self.answers = answers
        self.close = close
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                while self.answers:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        ),
                        0,
                    )
                    await reader.readexactly(length)
                    answer = self.answers.pop(0)
                    if answer == b"CLOSE":
                        break
                    writer.write(answer)
                    await writer.drain()
                    if self.close:
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def _raw_client(url: str, **options: Any) -> UpstreamClient:
    c = UpstreamClient("remote", UpstreamOptions(base_url=url, retry_backoff_s=0.01, **options))
    c.check_key()
    return c


OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"a": true}'
CHUNKED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    b'5\r\n{"a":\r\n6\r\n true}\r\n0\r\n\r\n'
)


async def test_one_connection_serves_every_request_bodies_by_length_or_chunks() -> None:
    server = _RawServer([OK, CHUNKED, OK])
    async with server as url:
        c = _raw_client(url)
        for _ in range(3):
            assert await c.request_json("GET", "/x") == {"a": True}
        await c.aclose()
    assert server.connections == 1


async def test_a_connection_the_provider_closed_while_idle_is_not_reused() -> None:
    server = _RawServer([OK, b"CLOSE", OK])
    async with server as url:
        c = _raw_client(url, max_retries=0)
        assert await c.request_json("GET", "/x") == {"a": True}
        with pytest.raises(UpstreamError) as e:  # the provider hangs up on this one: no answer
            await c.request_json("GET", "/x")
        assert e.value.code == "upstream_unreachable"
        await asyncio.sleep(0.05)
        assert await c.request_json("GET", "/x") == {"a": True}  # a new connection
        await c.aclose()
    assert server.connections == 2


async def test_a_body_ended_by_the_connection_and_a_garbled_answer() -> None:
    until_close = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"a": true}'
    async with _RawServer([until_close], close=True) as url:
        c = _raw_client(url, max_retries=0)
        assert await c.request_json("GET", "/x") == {"a": True}
        await c.aclose()
    async with _RawServer([b"HTTP/1.1 twohundred\r\n\r\n"]) as url:
        c = _raw_client(url, max_retries=0)
        with pytest.raises(UpstreamError) as e:
            await c.request_json("GET", "/x")
        assert e.value.status_code == 502
        await c.aclose()


async def test_a_half_read_answer_closes_its_connection() -> None:
    big = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 1000  # the rest never comes
    server = _RawServer([big, OK])
    async with server as url:
        c = _raw_client(url, max_retries=0, timeout_s=0.3)
        async with c.stream("GET", "/x") as resp:
            async for chunk in resp.aiter_bytes():
                assert chunk.startswith(b"x")
                break
        assert await c.request_json("GET", "/x") == {"a": True}
        await c.aclose()
    assert server.connections == 2


def test_a_header_that_would_split_the_request_is_refused_in_the_card() -> None:
    with pytest.raises(ValueError, match="line break"):
        UpstreamOptions(base_url="http://127.0.0.1:1/v1", headers={"X-A": "b\r\nX-Evil: 1"})
