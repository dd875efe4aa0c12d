"""Messages between the gateway and a replica's worker process (:mod:`mmserve.runtime.process`).

A message is a pickle (protocol 5), preceded by its length: 8 bytes, big-endian. Both ends use
asyncio streams on a Unix socket pair, whose writes are buffered by the loop and never block it:
with blocking writes both sides could wait on a full socket at once (a large image going each
way) and never read again. Both ends are this same mmserve installation, so a pickle carries
the engine's own types (PIL images, numpy arrays, the deltas) as they are.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

HEADER = 8


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=5)
    return len(data).to_bytes(HEADER, "big") + data


def send(writer: asyncio.StreamWriter, message: Any) -> None:
    """Queue ``message`` on ``writer`` (the loop writes it out; nothing waits here)."""
    writer.write(frame(message))


class Outbox:
    """The frames written in one step of the event loop, sent in one write at its end.

    A worker decoding 16 streams answers 16 calls per decode step, each a frame of its own: one
    write each was 16 sends, and on the gateway up to 16 wake-ups to read them. Held to the end
    of the step (``call_soon``), they leave together and arrive in one read; nothing waits
    longer than the step that wrote it. (The gateway's HTTP side does the same for its
    responses: ``mmserve.api.coalesce``.)
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._held: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        self._held.append(data)
        if len(self._held) == 1:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        held, self._held = self._held, []
        if not self.writer.is_closing():  # the other end is gone: nobody would read it
            self.writer.write(held[0] if len(held) == 1 else b"".join(held))


async def receive(reader: asyncio.StreamReader) -> Any:
    """The next message; :class:`asyncio.IncompleteReadError` once the other end is gone."""
    size = int.from_bytes(await reader.readexactly(HEADER), "big")
    return pickle.loads(await reader.readexactly(size))


async def open_socket(fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio streams on the connected Unix socket ``fd`` (the worker's end of the pair)."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
    return await asyncio.open_unix_connection(sock=sock, limit=LIMIT)


# The reader's buffer: it stops reading beyond twice this, and reads on while a message waits for
# its rest (readexactly), so a larger message (a video) still comes; smaller ones come in one read.
LIMIT = 2**24
