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
