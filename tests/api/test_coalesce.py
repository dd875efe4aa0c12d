"""The server's transport wrapper: a response's writes of one event-loop step leave in one send."""

from __future__ import annotations

import asyncio
import socket

from mmserve.api.coalesce import FLUSH_BYTES, CoalescingTransport


async def _pair() -> tuple[CoalescingTransport, socket.socket, asyncio.Transport]:
    here, there = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=here)
    return CoalescingTransport(transport, loop), there, transport  # type: ignore[arg-type]


def _sends(real: asyncio.Transport, counter: list[bytes]) -> None:
    write = real.write

    def counting(data: bytes | bytearray | memoryview) -> None:
        counter.append(bytes(data))
        write(data)

    real.write = counting  # type: ignore[method-assign]


async def test_head_and_body_written_back_to_back_leave_in_one_send() -> None:
    t, peer, real = await _pair()
    sent: list[bytes] = []
    _sends(real, sent)
    t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    t.write(b"{}")
    assert sent == []  # held until the loop step ends
    await asyncio.sleep(0)
    assert sent == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    t.write(b"next")  # a later step: its own send
    t.close()  # close sends what is held first
    assert sent[-1] == b"next"
    peer.setblocking(False)
    got = b""
    loop = asyncio.get_running_loop()
    while chunk := await asyncio.wait_for(loop.sock_recv(peer, 65536), 5):
        got += chunk
    assert got == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}next"
    peer.close()


async def test_a_large_write_is_not_held() -> None:
    t, peer, real = await _pair()
    sent: list[bytes] = []
    _sends(real, sent)
    t.write(b"x" * FLUSH_BYTES)
    assert len(sent) == 1 and t.get_write_buffer_size() == real.get_write_buffer_size()
    t.abort()
    peer.close()
