"""Strict ``data:<mime>;base64,<payload>`` parsing with a cap before decoding.

Split in two so that endpoints can do the cheap part on the event loop and the decoding
(linear in a payload of up to tens of MiB) off it: :func:`split_data_uri` checks the shape
and the size from the length alone; :func:`decode_base64` validates and decodes.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

import pybase64

from mmserve.errors import InvalidRequestError, PayloadTooLargeError

_HEADER = re.compile(
    r"^data:(?P<mime>[a-zA-Z0-9!#$&^_.+-]+/[a-zA-Z0-9!#$&^_.+-]+)?(?P<params>(;[^;,]*)*?);base64,", re.IGNORECASE
)


@dataclass
class DataURI:
    mime: str | None
    data: bytes


@dataclass
class EncodedDataURI:
    """A data URI whose shape and size were checked; its base64 text (from ``start``) not yet validated.

    The text is not cut out of the URI here: for a payload of tens of MiB, each copy costs
    milliseconds of the event loop (:meth:`ascii_payload` makes the one copy that is needed).
    """

    mime: str | None
    uri: str
    start: int  # where the base64 text begins in ``uri``

    @property
    def payload(self) -> str:
        return self.uri[self.start :]

    @property
    def payload_length(self) -> int:
        return len(self.uri) - self.start

    def ascii_payload(self) -> memoryview:
        """The base64 text as ASCII bytes, in one copy; a non-ASCII character becomes '?' (invalid base64)."""
        return memoryview(self.uri.encode("ascii", "replace"))[self.start :]  # the header before it is ASCII


def split_data_uri(uri: str, *, param: str, max_bytes: int) -> EncodedDataURI:
    """Check the shape and the decoded size (from the length) without decoding anything."""
    m = _HEADER.match(uri[:512])
    if not m:
        raise InvalidRequestError(
            "The data URI must look like 'data:image/png;base64,<base64 data>'.",
            param=param,
            code="invalid_data_uri",
        )
    length = len(uri) - m.end()
    if not length:
        raise InvalidRequestError("The data URI has no data after 'base64,'.", param=param, code="invalid_data_uri")
    # base64 is 4 characters per 3 bytes: refuse before decoding anything
    if length // 4 * 3 > max_bytes:
        raise PayloadTooLargeError(
            f"The data URI holds about {length // 4 * 3} bytes; the limit is {max_bytes} bytes.",
            param=param,
            code="data_uri_too_large",
        )
    return EncodedDataURI((m.group("mime") or "").lower() or None, uri, m.end())


def decode_base64(payload: str | bytes | memoryview, *, param: str) -> bytes:
    """Standard base64 with padding; no whitespace, no URL-safe alphabet."""

    def invalid(why: str) -> InvalidRequestError:
        return InvalidRequestError(f"The data URI's base64 payload {why}.", param=param, code="invalid_base64")

    try:
        raw = payload.encode("ascii") if isinstance(payload, str) else bytes(payload)
    except UnicodeEncodeError:
        raise invalid("contains characters that are not base64") from None
    if any(blank in raw for blank in (b" ", b"\n", b"\r", b"\t")):
        raise invalid("contains spaces or line breaks; send it on one line, unwrapped")
    if len(raw) % 4 != 0:
        raise invalid("has a length that is not a multiple of 4: check its '=' padding")
    try:
        return pybase64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            "is not valid base64: only A-Z, a-z, 0-9, '+', '/' and '=' padding at the end are allowed"
        ) from None


def parse_data_uri(uri: str, *, param: str, max_bytes: int) -> DataURI:
    """Both steps at once."""
    encoded = split_data_uri(uri, param=param, max_bytes=max_bytes)
    return DataURI(encoded.mime, decode_base64(encoded.payload, param=param))
