"""Unpaired UTF-16 surrogates in JSON request bodies.

JSON may escape a lone surrogate (``"\\ud800"``) and Python's decoder keeps it in the string,
but it is not Unicode text: tokenizers, templates and encoders fail on it deep inside a
model library. Request models find it first so that the client gets a 400 naming the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mmserve.errors import InvalidRequestError, format_loc

_SURROGATE = re.compile("[\ud800-\udfff]")
_Link = tuple["_Link", str | int] | None  # (the parent's link, this key); None: the root


def lone_surrogate_at(value: Any) -> list[str | int] | None:
    """The location of the first string (or object key) holding a lone surrogate, or None.

    Iterative, since a body can nest as deep as the JSON decoder allows.
    """
    try:  # the common case, at C speed (about twice as fast as the walk below)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return None
    except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
        pass  # a surrogate somewhere (or not JSON data): find where
    # Each stacked value carries its path as a chain of (parent, key) links: a list copied at
    # every level would make the walk quadratic in the depth (100,000 levels: 25 s, not 0.1 s).
    stack: list[tuple[_Link, Any]] = [(None, value)]
    while stack:
        link, v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                return _unwind(link)
        elif isinstance(v, dict):
            for k, item in v.items():
                if isinstance(k, str) and _SURROGATE.search(k):
                    return _unwind(link)
                stack.append(((link, str(k)), item))
        elif isinstance(v, list):
            stack.extend(((link, i), item) for i, item in enumerate(v))
    return None


def _unwind(link: _Link) -> list[str | int]:
    loc: list[str | int] = []
    while link is not None:
        link, key = link
        loc.append(key)
    loc.reverse()
    return loc


def refuse_lone_surrogates(value: Any) -> None:
    loc = lone_surrogate_at(value)
    if loc is not None:
        param = format_loc(loc) or None
        where = f"'{param}'" if param else "The request"
        raise InvalidRequestError(
            f"{where} contains an unpaired UTF-16 surrogate (an escape like \\ud800 without its pair), "
            "which is not Unicode text. Send valid Unicode.",
            param=param,
            code="invalid_unicode",
        )
