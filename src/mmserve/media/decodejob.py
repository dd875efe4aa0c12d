"""One image decode as plain data: what the server sends a decode worker and what comes back.

The same :func:`run_job` runs in a worker process (``decode_isolation = "process"``) or in a
thread. Across the process boundary a job travels as a small JSON header plus the raw bytes,
and a result as JSON plus raw pixels: never a pickle, because a worker that parsed hostile
bytes must not be able to hand the server an object that runs code when loaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from mmserve.errors import InvalidRequestError, MMServeError, PayloadTooLargeError, UnsupportedMediaError
from mmserve.media.datauri import decode_base64
from mmserve.media.image.decode import SOURCE_PIXELS, ImageInputSize, ImageLimits, decode_image

MAX_HEADER_BYTES = 64 * 1024
_MODES = {"RGB": 3, "RGBA": 4}
_ERRORS: dict[int, type[MMServeError]] = {
    400: InvalidRequestError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaError,
}


@dataclass(frozen=True)
class DecodeJob:
    payload: bytes  # the image's bytes, or (base64=True) the base64 text of a data URI as ASCII
    limits: ImageLimits
    param: str
    base64: bool = False
    target_side: int | None = None
    input_size: ImageInputSize | None = None
    keep_alpha: bool = False


def run_job(job: DecodeJob) -> Image.Image:
    data = decode_base64(job.payload, param=job.param) if job.base64 else job.payload
    return decode_image(
        data,
        job.limits,
        param=job.param,
        target_side=job.target_side,
        input_size=job.input_size,
        keep_alpha=job.keep_alpha,
    )


# ------------------------------------------------------------------ wire format


def job_header(job: DecodeJob) -> bytes:
    return json.dumps(
        {
            "limits": asdict(job.limits),
            "param": job.param,
            "base64": job.base64,
            "target_side": job.target_side,
            "input_size": asdict(job.input_size) if job.input_size else None,
            "keep_alpha": job.keep_alpha,
        }
    ).encode()


def job_from_wire(header: bytes, payload: bytes) -> DecodeJob:
    h = json.loads(header)
    limits = h["limits"]
    limits["formats"] = tuple(limits["formats"])
    size = h.get("input_size")
    return DecodeJob(
        payload=payload,
        limits=ImageLimits(**limits),
        param=h["param"],
        base64=bool(h["base64"]),
        target_side=h.get("target_side"),
        input_size=ImageInputSize(**size) if size else None,
        keep_alpha=bool(h.get("keep_alpha")),
    )


def result_to_wire(result: Image.Image | MMServeError) -> tuple[bytes, bytes]:
    if isinstance(result, MMServeError):
        head: dict[str, Any] = {
            "ok": False,
            "status": result.status_code,
            "code": result.code,
            "message": result.message,
        }
        return json.dumps(head).encode(), b""
    source = result.info.get(SOURCE_PIXELS)
    head = {"ok": True, "mode": result.mode, "size": list(result.size), "source_pixels": source}
    return json.dumps(head).encode(), result.tobytes()


def result_from_wire(header: bytes, pixels: bytes, job: DecodeJob) -> Image.Image:
    """Rebuild the image, checking everything the worker says against the job's limits."""
    h = json.loads(header)
    if not h.get("ok"):
        cls = _ERRORS.get(h.get("status"), InvalidRequestError)
        code = h.get("code") if isinstance(h.get("code"), str) else None
        raise cls(str(h.get("message", "The image cannot be decoded."))[:500], param=job.param, code=code)
    mode, size = h["mode"], h["size"]
    w, h_ = int(size[0]), int(size[1])
    lim = job.limits
    if mode not in _MODES or not (0 < w <= lim.max_side and 0 < h_ <= lim.max_side):
        raise ValueError("decode worker returned an impossible image")
    if len(pixels) != w * h_ * _MODES[mode]:
        raise ValueError("decode worker returned the wrong number of bytes")
    source = h.get("source_pixels")
    if not isinstance(source, int) or not w * h_ <= source <= lim.max_pixels:
        raise ValueError("decode worker returned an impossible source size")
    image = Image.frombytes(mode, (w, h_), pixels)
    image.info[SOURCE_PIXELS] = source
    return image
