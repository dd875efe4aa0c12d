"""Strict ``data:<mime>;base64,<payload>`` parsing with a cap before decoding."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from mmserve.api.errors import InvalidRequestError, PayloadTooLargeError

_HEADER = re.compile(r"^data:(?P<mime>[a-zA-Z0-9!#$&^_.+-]+/[a-zA-Z0-9!#$&^_.+-]+)?(?P<params>(;[^;,]*)*?);base64,")
_B64 = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")


@dataclass
class DataURI:
    mime: str | None
    data: bytes


def parse_data_uri(uri: str, *, param: str, max_bytes: int) -> DataURI:
    m = _HEADER.match(uri[:512])
    if not m:
        raise InvalidRequestError(
            "The data URI must look like 'data:image/png;base64,<base64 data>'.",
            param=param,
            code="invalid_data_uri",
        )
    payload = uri[m.end() :]
    # base64 is 4 chars per 3 bytes: refuse before decoding anything
    if len(payload) * 3 // 4 > max_bytes:
        raise PayloadTooLargeError(
            f"The data URI is larger than the {max_bytes} byte limit.", param=param, code="data_uri_too_large"
        )
    raw = payload.strip().encode("ascii", "replace")
    if not raw:
        raise InvalidRequestError("The data URI has no data after 'base64,'.", param=param, code="invalid_data_uri")
    if len(raw) % 4 != 0 or not _B64.match(raw):
        raise InvalidRequestError(
            "The data URI's payload is not valid base64 (check padding and characters).",
            param=param,
            code="invalid_base64",
        )
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            "The data URI's payload is not valid base64.", param=param, code="invalid_base64"
        ) from None
    return DataURI((m.group("mime") or "").lower() or None, data)
