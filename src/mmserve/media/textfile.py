"""Text files sent as inputs (the Responses API's ``input_file``): bytes -> bounded UTF-8 text.

Only text is read (plain text, Markdown, CSV, JSON, code, ...): a file is text when it
decodes as UTF-8 and holds no NUL byte. Documents that need a parser (PDF, Office) and
binary files are a 415 naming what was received, never passed to a model as noise.
"""

from __future__ import annotations

import codecs

from mmserve.errors import PayloadTooLargeError, UnsupportedMediaError

_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (e.g. an Office document)"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"\x89PNG", "a PNG image (send images as input_image)"),
    (b"\xff\xd8\xff", "a JPEG image (send images as input_image)"),
    (b"RIFF", "a RIFF file (audio or WebP)"),
)


def read_text_file(data: bytes, *, param: str, max_chars: int) -> str:
    """The file's text (a UTF-8 BOM removed); 415 for anything that is not UTF-8 text, 413 past ``max_chars``."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            raise _unsupported(f"Received {kind}.", param)
    if b"\x00" in data:
        raise _unsupported("Received a binary file.", param)
    try:
        text = data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError:
        raise _unsupported("Received a file that is not UTF-8 text.", param) from None
    if len(text) > max_chars:
        raise PayloadTooLargeError(
            f"The file holds {len(text)} characters; at most {max_chars} are read.",
            param=param,
            code="file_too_large",
        )
    return text


def _unsupported(what: str, param: str) -> UnsupportedMediaError:
    return UnsupportedMediaError(
        f"{what} Files are read as UTF-8 text only (plain text, Markdown, CSV, JSON, code).",
        param=param,
        code="unsupported_file",
    )
