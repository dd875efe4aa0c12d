"""A multipart form Starlette refused, in mmserve's words: over one of its limits, or malformed.

Starlette's ``MultiPartException`` (raised as a 400 ``HTTPException``) carries only a sentence.
Its limits (files, fields, bytes per field) are the server's, so each gets its own code and
names the limit, as other server limits do; anything else is a malformed body.
"""

from __future__ import annotations

from mmserve.errors import InvalidRequestError, MMServeError, PayloadTooLargeError


def form_error(detail: str, *, files: str, file_param: str, max_fields: int, max_field_bytes: int) -> MMServeError:
    """The error for Starlette's ``detail``; ``files`` says what files the endpoint takes (e.g. "one 'file'")."""
    if detail.startswith("Too many files"):
        return InvalidRequestError(f"Too many files: send {files}.", param=file_param, code="too_many_files")
    if detail.startswith("Too many fields"):
        return InvalidRequestError(
            f"Too many form fields: at most {max_fields} (each item of a list is a field of its own).",
            code="too_many_fields",
        )
    if "exceeded maximum size" in detail:
        return PayloadTooLargeError(
            f"A text field of the form is larger than {max_field_bytes // 1024} KiB.", code="field_too_large"
        )
    return InvalidRequestError(
        "The multipart/form-data body is malformed (missing boundary or broken parts).", code="invalid_multipart"
    )
