"""A corpus of hostile and unusual images, each answered with the right status, and the server
answering normal requests afterwards (decode workers killed or crashed are replaced)."""

from __future__ import annotations

import base64
import concurrent.futures
import time
from collections.abc import Callable

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from tests.helpers import hostile as h
from tests.helpers.images import image_bytes
from tests.security.conftest import SecurityServer, chat_body, error_of, post_chat

PARAM = "messages[0].content[1].image_url"


def uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


# (case, data URI factory, model, status, code, words the message must contain)
Case = tuple[str, Callable[[], str], str, int, str, str]
REFUSED: list[Case] = [
    ("empty data URI", lambda: "data:image/png;base64,", "demo-vlm", 400, "invalid_data_uri", ""),
    ("truncated PNG", lambda: uri(h.truncated(h.encode(h.noisy(), "PNG"))), "demo-vlm", 400, "invalid_image", "PNG"),
    ("truncated JPEG", lambda: uri(h.truncated(h.encode(h.noisy(), "JPEG"))), "demo-vlm", 400, "invalid_image", "JPEG"),
    ("truncated WEBP", lambda: uri(h.truncated(h.encode(h.noisy(), "WEBP"))), "demo-vlm", 400, "invalid_image", "WEBP"),
    ("1x1", lambda: uri(image_bytes((1, 1))), "demo-vlm", 400, "image_too_small", "1x1"),
    ("below card min side", lambda: uri(image_bytes((12, 40))), "vlm-gif", 400, "image_too_small", "16 pixels"),
    ("PNG declaring 100000x100000", lambda: uri(h.png_bomb_header()), "demo-vlm", 413, "image_too_large", "4000x4000"),
    ("PNG declaring 5000x5000", lambda: uri(h.png_bomb_header(5000, 5000)), "demo-vlm", 413, "image_too_large", "5000"),
    ("JPEG declaring 65000x65000", lambda: uri(h.jpeg_bomb_header()), "demo-vlm", 413, "image_too_large", "JPEG"),
    ("WEBP declaring 16383x16383", lambda: uri(h.webp_bomb_header()), "demo-vlm", 413, "image_too_large", "WEBP"),
    ("4001 px wide", lambda: uri(image_bytes((4001, 30))), "demo-vlm", 413, "image_too_large", "4001x30"),
    ("aspect ratio 300", lambda: uri(image_bytes((8, 2400))), "demo-vlm", 400, "image_aspect_ratio", "200"),
    ("text, not an image", lambda: uri(b"hello, not an image"), "demo-vlm", 415, "unsupported_media_type", "png"),
    (
        "PNG signature on JPEG data",
        lambda: uri(b"\x89PNG\r\n\x1a\n" + image_bytes(fmt="JPEG")[3:]),
        "demo-vlm",
        400,
        "invalid_image",
        "PNG",
    ),
    ("HTML page as PNG", lambda: uri(h.HTML_PAGE), "demo-vlm", 415, "unsupported_media_type", "HTML page"),
    ("SVG", lambda: uri(h.SVG, "image/svg+xml"), "demo-vlm", 415, "unsupported_media_type", "SVG"),
    ("PDF", lambda: uri(h.PDF), "demo-vlm", 415, "unsupported_media_type", "PDF"),
    ("HEIC", lambda: uri(h.heic_header(), "image/heic"), "demo-vlm", 415, "unsupported_media_type", "HEIC"),
    ("TIFF", lambda: uri(image_bytes(fmt="TIFF"), "image/tiff"), "demo-vlm", 415, "unsupported_media_type", "TIFF"),
    (
        "AVIF",
        lambda: uri(h.encode(Image.new("RGB", (32, 32)), "AVIF"), "image/avif"),
        "demo-vlm",
        415,
        "unsupported_media_type",
        "AVIF",
    ),
    (
        "GIF on a PNG/JPEG/WEBP card",
        lambda: uri(image_bytes(fmt="GIF")),
        "demo-vlm",
        415,
        "unsupported_media_type",
        "GIF",
    ),
    ("animated GIF", lambda: uri(h.animated("GIF"), "image/gif"), "vlm-gif", 415, "animated_image", "GIF"),
    ("animated WEBP", lambda: uri(h.animated("WEBP"), "image/webp"), "demo-vlm", 415, "animated_image", "WEBP"),
    ("animated PNG", lambda: uri(h.animated("PNG")), "demo-vlm", 415, "animated_image", "PNG"),
    (
        "JPEG with 500 scans",
        lambda: uri(h.progressive_jpeg_with_scans(64, 500), "image/jpeg"),
        "demo-vlm",
        400,
        "image_too_complex",
        "scans",
    ),
    (
        "JPEG with 500 scans behind a junk byte",
        lambda: uri(h.with_junk_after_first_segment(h.progressive_jpeg_with_scans(64, 500)), "image/jpeg"),
        "demo-vlm",
        400,
        "image_too_complex",
        "scans",
    ),
    ("slow JPEG", lambda: uri(h.slow_jpeg(), "image/jpeg"), "demo-vlm", 400, "image_decode_timeout", "longer than"),
    ("huge base64", lambda: "data:image/png;base64," + "A" * 1_500_000, "demo-vlm", 413, "data_uri_too_large", ""),
    ("bad padding", lambda: "data:image/png;base64,aGVsbG8", "demo-vlm", 400, "invalid_base64", "padding"),
    (
        "line breaks in base64",
        lambda: uri(image_bytes())[:60] + "\n" + uri(image_bytes())[60:63],
        "demo-vlm",
        400,
        "invalid_base64",
        "line breaks",
    ),
    ("URL-safe base64", lambda: "data:image/png;base64,iVBO-_==", "demo-vlm", 400, "invalid_base64", ""),
    ("non-ASCII base64", lambda: "data:image/png;base64,iVBOR\u00e9==", "demo-vlm", 400, "invalid_base64", ""),
    ("no base64 marker", lambda: "data:image/png,rawbytes", "demo-vlm", 400, "invalid_data_uri", "base64"),
    ("not an image type", lambda: uri(b"hello", "text/plain"), "demo-vlm", 400, "invalid_image_url", "text/plain"),
]


@pytest.mark.parametrize(("name", "make", "model", "status", "code", "words"), REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_file_gets_the_right_4xx(
    sec: SecurityServer, name: str, make: Callable[[], str], model: str, status: int, code: str, words: str
) -> None:
    err = error_of(post_chat(sec, make(), model=model), status)
    assert err["param"] == PARAM
    assert err["code"] == code, err
    assert words in err["message"]


ACCEPTED = [
    ("CMYK JPEG", lambda: uri(h.cmyk_jpeg(), "image/jpeg"), "demo-vlm"),
    ("16-bit PNG", lambda: uri(h.png16()), "demo-vlm"),
    ("EXIF-rotated JPEG", lambda: uri(h.exif_rotated_jpeg(), "image/jpeg"), "demo-vlm"),
    ("palette PNG with transparency", lambda: uri(h.transparent_palette_png()), "demo-vlm"),
    ("RGBA PNG", lambda: uri(h.encode(Image.new("RGBA", (40, 30), (9, 9, 9, 100)), "PNG")), "demo-vlm"),
    ("PNG labelled image/jpeg", lambda: uri(image_bytes(), "image/jpeg"), "demo-vlm"),
    ("octet-stream", lambda: uri(image_bytes(fmt="WEBP"), "application/octet-stream"), "demo-vlm"),
    ("1500x1000 JPEG", lambda: uri(h.encode(h.noisy((1500, 1000)), "JPEG"), "image/jpeg"), "demo-vlm"),
    ("8x1600 (aspect 200)", lambda: uri(image_bytes((8, 1600))), "demo-vlm"),
    ("static GIF on a GIF card", lambda: uri(image_bytes((32, 32), fmt="GIF"), "image/gif"), "vlm-gif"),
]


@pytest.mark.parametrize(("name", "make", "model"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_unusual_but_valid_images_are_served(
    sec: SecurityServer, name: str, make: Callable[[], str], model: str
) -> None:
    resp = post_chat(sec, make(), model=model)
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["prompt_tokens"] > 16


def test_param_names_the_exact_image(sec: SecurityServer) -> None:
    good = uri(image_bytes())
    body = {
        "model": "demo-vlm",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": good}}]},
            {"role": "assistant", "content": "A red rectangle."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And these?"},
                    {"type": "image_url", "image_url": {"url": good}},
                    {"type": "image_url", "image_url": {"url": uri(h.png_bomb_header())}},
                ],
            },
        ],
        "max_tokens": 2,
    }
    resp = httpx.post(f"{sec.url}/v1/chat/completions", json=body, timeout=60)
    assert error_of(resp, 413)["param"] == "messages[2].content[2].image_url"


def test_too_many_images_for_the_card(sec: SecurityServer) -> None:
    body = chat_body(uri(image_bytes()), model="vlm-base64-only")
    body["messages"][0]["content"] *= 2  # two text parts, two images: fine
    body["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": uri(image_bytes())}})
    err = error_of(httpx.post(f"{sec.url}/v1/chat/completions", json=body, timeout=60), 400)
    assert err["code"] == "too_many_images" and "at most 2" in err["message"]


def test_request_body_over_the_limit_is_413(sec: SecurityServer) -> None:
    big = chat_body("data:image/png;base64," + "A" * (4 * 1024 * 1024))
    err = error_of(httpx.post(f"{sec.url}/v1/chat/completions", json=big, timeout=60), 413)
    assert "limit" in err["message"]
    # the same body streamed without a Content-Length
    raw = httpx.Request("POST", "/", json=big).read()
    chunks = (raw[i : i + 65536] for i in range(0, len(raw), 65536))
    resp = httpx.post(
        f"{sec.url}/v1/chat/completions", content=chunks, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert resp.status_code == 413, resp.text


def test_server_keeps_answering_while_and_after_decodes_time_out(sec: SecurityServer) -> None:
    """Slow decodes are killed at their limit; a normal request meanwhile and afterwards is served."""
    slow = uri(h.slow_jpeg(), "image/jpeg")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        stuck = [pool.submit(post_chat, sec, slow) for _ in range(3)]
        time.sleep(0.2)
        client = OpenAI(base_url=f"{sec.url}/v1", api_key="unused", max_retries=0)
        ok = client.chat.completions.create(**chat_body(uri(image_bytes(fmt="JPEG"), "image/jpeg")))
        assert ok.usage and ok.usage.prompt_tokens > 16
        for f in stuck:
            assert error_of(f.result(), 400)["code"] == "image_decode_timeout"
    after = client.chat.completions.create(**chat_body(uri(image_bytes(fmt="WEBP"), "image/webp")))
    assert after.choices[0].finish_reason in ("stop", "length")
    assert sec.live.health()["status"] == "ok"
