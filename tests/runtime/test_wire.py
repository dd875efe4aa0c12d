"""Messages between a gateway and its worker processes: framed pickles on asyncio streams."""

from __future__ import annotations

import asyncio
import socket

import numpy as np

from mmserve.runtime import wire


async def _pair() -> tuple[
    tuple[asyncio.StreamReader, asyncio.StreamWriter], tuple[asyncio.StreamReader, asyncio.StreamWriter]
]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return (
        await asyncio.open_unix_connection(sock=a, limit=wire.LIMIT),
        await wire.open_socket(b.detach()),
    )


def test_messages_larger_than_the_read_limit_cross_both_ways_at_once() -> None:
    """A video's frames one way while an image request goes the other: neither side blocks the other."""

    async def main() -> None:
        (ra, wa), (rb, wb) = await _pair()
        big = np.arange(
            3 * wire.LIMIT // 8, dtype=np.int64
        )  # 3x LIMIT bytes: past the point where a reader pauses (2x)
        wire.send(wa, ("call", 1, "video", (big,)))
        wire.send(wb, ("batch", 1, [big[::-1]], True))
        wire.send(wa, ("cancel", 2))
        got_b, got_a = await asyncio.gather(wire.receive(rb), wire.receive(ra))
        assert got_b[:3] == ("call", 1, "video") and np.array_equal(got_b[3][0], big)
        assert got_a[:2] == ("batch", 1) and np.array_equal(got_a[2][0], big[::-1]) and got_a[3] is True
        assert await wire.receive(rb) == ("cancel", 2)  # the next message starts where the last ended
        wa.close()
        try:
            await wire.receive(rb)
        except asyncio.IncompleteReadError:
            pass
        else:
            raise AssertionError("a closed end must end the reader")
        wb.close()

    asyncio.run(asyncio.wait_for(main(), 60))  # a side that blocked the other would hang: fail instead


def test_an_outbox_sends_the_frames_of_one_loop_step_in_one_write() -> None:
    """A worker's 16 answers of one decode step: one send, one read on the gateway, in order."""

    async def main() -> None:
        (_, wa), (rb, wb) = await _pair()
        writes: list[int] = []
        write = wa.write

        def counted(data: bytes) -> None:
            writes.append(len(data))
            write(data)

        wa.write = counted  # type: ignore[method-assign]
        outbox = wire.Outbox(wa)
        for i in range(16):
            outbox.write(wire.frame(("batch", i, [f"token {i}"], False)))
        assert writes == []  # held until this step of the loop ends
        await asyncio.sleep(0)
        assert len(writes) == 1
        assert [await wire.receive(rb) for _ in range(16)] == [("batch", i, [f"token {i}"], False) for i in range(16)]
        outbox.write(wire.frame(("result", 99, "alone")))  # a later step: a write of its own
        assert await wire.receive(rb) == ("result", 99, "alone") and len(writes) == 2
        wa.close()
        wb.close()

    asyncio.run(asyncio.wait_for(main(), 30))
