"""Errors that teach: a JSON syntax error with its line and column, an unknown route with the ones that exist.

Seed 004's curl builds its body with ``base64 -i image.jpg`` inside a double-quoted JSON
string. GNU ``base64`` wraps its output at 76 columns, so on Linux the JSON string holds raw
line breaks, which JSON forbids: the answer names the position and says how to encode on one
line (``base64 -w0``), instead of only "not valid JSON".
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from mmserve.errors import InvalidRequestError, NotFoundError

_WRAPPED_HINT = (
    " A raw line break (or another control character) inside a JSON string is not allowed: if the string "
    "is base64 (a data URI), it was probably wrapped at 76 columns. Encode it on one line with "
    "'base64 -w0 FILE' (GNU/Linux) or 'base64 -i FILE | tr -d \"\\n\"' (macOS), or escape line breaks as \\n."
)
_LIMITS_HINT = " (The body must be UTF-8 JSON nested less than ~1000 levels deep.)"
MAX_LISTED = 40


def position(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of character ``pos`` in ``text``."""
    pos = max(0, min(pos, len(text)))
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def invalid_json(reason: str, pos: int | None, text: str | None) -> InvalidRequestError:
    """The 400 for a body that is not JSON: what the parser expected, where, and (for control characters) why."""
    reason = reason.strip().rstrip(":").removesuffix(" at").strip()
    where = ""
    if pos is not None and text is not None:
        line, col = position(text, pos)
        where = f" at line {line}, column {col} (character {pos})"
    message = "The request body is not valid JSON"
    message += f": {reason}{where}." if reason else f"{where}."
    if "control character" in reason.lower():
        message += _WRAPPED_HINT
    elif not reason:
        message += _LIMITS_HINT
    return InvalidRequestError(message, code="invalid_json")


def loads(data: bytes) -> Any:
    """``json.loads`` whose failures are :func:`invalid_json` 400s (for routes that read their own body)."""
    try:
        text = data.decode("utf-8") if data else "null"
    except UnicodeDecodeError as e:
        raise InvalidRequestError(
            f"The request body is not UTF-8 text (byte {e.start} is not valid UTF-8); send JSON in UTF-8.",
            code="invalid_json",
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise invalid_json(e.msg, e.pos, text) from None
    except RecursionError:
        raise invalid_json("nested too deeply", None, None) from None


def unknown_route(method: str, path: str, paths: dict[str, Any]) -> NotFoundError:
    """A 404 listing the API's surfaces (``paths``: the OpenAPI document's), and the closest path if one is close."""
    surfaces = {
        p: sorted(m.upper() for m in ms if m.lower() in _METHODS) for p, ms in paths.items() if p.startswith("/v1/")
    }
    listed = [f"{'/'.join(ms)} {p}" for p, ms in sorted(surfaces.items()) if ms][:MAX_LISTED]
    close = difflib.get_close_matches(path, list(surfaces), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    return NotFoundError(
        f"No such route: {method} {path}.{hint} mmserve serves (base URL http://HOST:PORT/v1): "
        + "; ".join(listed)
        + ". /docs has the full API.",
        code="unknown_route",
    )


_METHODS = ("get", "post", "put", "patch", "delete")
