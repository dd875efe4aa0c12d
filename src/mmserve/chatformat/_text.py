"""Small helpers shared by the incremental parsers."""

from __future__ import annotations


def partial_tag_len(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``.

    Streamed text may end in the middle of a tag (``"...</thi"``); that much is held
    back until the next delta decides it.
    """
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def split_trailing_space(text: str) -> tuple[str, str]:
    """``("abc  \\n", ...)`` -> ``("abc", "  \\n")``."""
    stripped = text.rstrip()
    return stripped, text[len(stripped) :]
