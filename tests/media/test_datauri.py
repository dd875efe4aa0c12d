from __future__ import annotations

import base64

import pytest

from mmserve.errors import InvalidRequestError, PayloadTooLargeError
from mmserve.media.datauri import decode_base64, parse_data_uri, split_data_uri


def test_parses_and_caps_before_decoding() -> None:
    payload = base64.b64encode(b"x" * 30).decode()
    uri = parse_data_uri(f"data:image/png;base64,{payload}", param="p", max_bytes=100)
    assert uri.mime == "image/png" and uri.data == b"x" * 30
    with pytest.raises(PayloadTooLargeError) as e:
        split_data_uri(f"data:image/png;base64,{payload}", param="p", max_bytes=10)
    assert e.value.code == "data_uri_too_large" and e.value.param == "p"


def test_size_is_refused_from_the_length_alone() -> None:
    huge = "data:image/png;base64," + "!" * 4_000_000  # not even base64: never looked at
    with pytest.raises(PayloadTooLargeError):
        split_data_uri(huge, param="p", max_bytes=1_000_000)


def test_header_variants() -> None:
    assert split_data_uri("data:IMAGE/PNG;BASE64,AAAA", param="p", max_bytes=10).mime == "image/png"
    assert split_data_uri("data:image/jpeg;charset=utf-8;base64,AAAA", param="p", max_bytes=10).mime == "image/jpeg"
    assert split_data_uri("data:;base64,AAAA", param="p", max_bytes=10).mime is None


@pytest.mark.parametrize(
    "bad", ["data:image/png;base64", "data:;base64,", "image/png;base64,AAAA", "data:image/png,AAAA", "data:"]
)
def test_shapes_refused(bad: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        parse_data_uri(bad, param="p", max_bytes=100)
    assert e.value.code == "invalid_data_uri"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ("aGVsbG8", "multiple of 4"),
        ("aGVs\nbG8=", "line breaks"),
        ("aGVs bG8=", "spaces"),
        ("aGV-bG8_", "not valid base64"),
        ("a=Vsb=8=", "not valid base64"),
        ("aGVsbG8=====", "not valid base64"),  # padding past the end (the standard library took it)
        ("aGVsbG8h====", "not valid base64"),
        ("aGVsbG8\u00e9", "not base64"),
    ],
)
def test_bad_base64(payload: str, words: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        decode_base64(payload, param="p")
    assert e.value.code == "invalid_base64" and words in e.value.message


def test_base64_bytes_and_text_agree() -> None:
    assert decode_base64("aGVsbG8=", param="p") == decode_base64(b"aGVsbG8=", param="p") == b"hello"


def test_the_payload_is_read_in_place_and_copied_once_as_ascii() -> None:
    uri = "data:image/png;charset=x;base64,aGVsbG8="
    encoded = split_data_uri(uri, param="p", max_bytes=10)
    assert (encoded.payload, encoded.payload_length) == ("aGVsbG8=", 8)
    assert (
        bytes(encoded.ascii_payload()) == b"aGVsbG8=" and decode_base64(encoded.ascii_payload(), param="p") == b"hello"
    )
    accented = split_data_uri("data:image/png;base64,aGVsbé8=", param="p", max_bytes=10)
    assert bytes(accented.ascii_payload()) == b"aGVsb?8="  # one '?' for one character: still invalid base64
    with pytest.raises(InvalidRequestError) as e:
        decode_base64(accented.ascii_payload(), param="p")
    assert e.value.code == "invalid_base64"
