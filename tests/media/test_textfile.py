from __future__ import annotations

import pytest

from mmserve.errors import PayloadTooLargeError, UnsupportedMediaError
from mmserve.media.textfile import read_text_file


def test_utf8_text_is_read_without_its_bom() -> None:
    assert read_text_file("\ufeffnaïve, café\n".encode(), param="f", max_chars=100) == "naïve, café\n"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"%PDF-1.7\n...", "PDF"),
        (b"PK\x03\x04rest", "ZIP"),
        (b"\x89PNG\r\n\x1a\n", "input_image"),
        (b"abc\x00def", "binary"),
        (b"\xff\xfe\x00a", "binary"),
        ("café".encode("latin-1"), "not UTF-8"),
    ],
)
def test_anything_but_text_is_a_415_naming_what_came(data: bytes, words: str) -> None:
    with pytest.raises(UnsupportedMediaError) as e:
        read_text_file(data, param="input[0].content[0]", max_chars=100)
    assert words in e.value.message and e.value.param == "input[0].content[0]"


def test_long_files_are_a_413() -> None:
    with pytest.raises(PayloadTooLargeError):
        read_text_file(b"x" * 101, param="f", max_chars=100)
