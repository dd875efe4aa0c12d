"""Serving a stored file: Starlette's FileResponse (Range requests) with two corrections.

- A Range header that is malformed or names another unit than ``bytes`` is ignored and the
  whole file is sent (RFC 9110 14.2: a server MUST ignore unknown units and MAY ignore
  invalid ranges); Starlette answers those with a plain-text 400 in its own words.
- The file is stat'ed before the response starts, off the event loop: a file removed in the
  meantime (expiry, DELETE) is a 404 in the error envelope, not Starlette's RuntimeError (a 500).
- The file is read in 1 MiB chunks, not Starlette's 64 KiB: each chunk is one hop to a worker
  thread (reads never block the event loop) and one write to the socket, and per-chunk costs
  held a 100 MB download to ~90 MB/s (benchmarks/downloads.py). uvicorn offers no zero-copy
  (``http.response.zerocopy``/sendfile) to ASGI apps, so a chunk is still copied once.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from starlette.responses import FileResponse, MalformedRangeHeader

from mmserve.errors import NotFoundError


class _FileResponse(FileResponse):
    chunk_size = 1 << 20

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []  # no ranges: the whole file (RangeNotSatisfiable is still a 416)


async def file_response(
    path: Path, *, media_type: str, filename: str, headers: dict[str, str] | None = None
) -> FileResponse:
    try:
        stat = await asyncio.to_thread(os.stat, path)
    except FileNotFoundError:
        raise NotFoundError("The file has expired.", code="expired") from None
    return _FileResponse(path, media_type=media_type, filename=filename, headers=headers, stat_result=stat)
