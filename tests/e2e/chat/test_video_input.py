"""video_url parts through the openai SDK: sampled frames reach the demo VLM as images, counted as video tokens."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers.clips import clip, video_part, video_uri
from tests.helpers.httpserver import TargetServer

TOKENS_PER_FRAME = 16  # the demo VLM's image tokens


@pytest.fixture
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def _ask(video: dict, text: str = "What happens in this video?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": text}, video]}]


@pytest.mark.parametrize("container", ["mp4", "webm", "mov"])
def test_the_demo_vlm_answers_about_a_video(client: OpenAI, container: str) -> None:
    part = video_part(video_uri(clip(4, 8, (160, 120), container=container), container))
    with_video = client.chat.completions.create(model="demo-vlm", messages=_ask(part), max_tokens=8)  # type: ignore[arg-type]
    text_only = client.chat.completions.create(
        model="demo-vlm", messages=[{"role": "user", "content": "What happens in this video?"}], max_tokens=8
    )
    assert with_video.choices[0].message.content
    details = with_video.usage.prompt_tokens_details.model_dump()  # type: ignore[union-attr]
    # 4 s at the card's 1 fps: 4 frames (its max_video_frames), 16 tokens each
    assert details["video_frames"] == 4 and details["video_tokens"] == 4 * TOKENS_PER_FRAME
    assert details["image_tokens"] == 0
    assert with_video.usage.prompt_tokens >= text_only.usage.prompt_tokens + 4 * TOKENS_PER_FRAME  # type: ignore[union-attr]


def test_images_and_a_video_are_counted_apart_and_streams_report_them(client: OpenAI) -> None:
    from tests.helpers.images import data_uri

    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_uri()}},
                video_part(video_uri(clip(2, 4))),
                {"type": "text", "text": "Compare them."},
            ],
        }
    ]
    stream = client.chat.completions.create(
        model="demo-vlm",
        messages=messages,
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    usage = [c.usage for c in stream if c.usage][-1]
    details = usage.prompt_tokens_details.model_dump()  # type: ignore[union-attr]
    assert details["image_tokens"] == TOKENS_PER_FRAME
    assert details["video_frames"] == 2 and details["video_tokens"] == 2 * TOKENS_PER_FRAME


@pytest.fixture
def video_host() -> Iterator[TargetServer]:
    server = TargetServer("127.0.0.1").start()
    server.routes["/clip.mp4"] = (200, {"Content-Type": "video/mp4"}, clip(3, 8))
    yield server
    server.stop()


def test_a_video_link_is_fetched(client: OpenAI, video_host: TargetServer) -> None:
    r = client.chat.completions.create(
        model="demo-vlm",
        messages=_ask(video_part(video_host.url("/clip.mp4"))),  # type: ignore[arg-type]
        max_tokens=4,
    )
    assert r.usage.prompt_tokens_details.model_dump()["video_frames"] == 3  # type: ignore[union-attr]
    assert video_host.paths() == ["/clip.mp4"]


def test_auto_routes_a_video_to_a_card_that_takes_video(base_url: str) -> None:
    body = {"model": "auto", "messages": _ask(video_part(video_uri(clip(1, 4)))), "max_tokens": 2}
    resp = httpx.post(f"{base_url}/chat/completions", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == "demo-vlm"
    assert "tiny-text" in resp.headers["x-mmserve-route"]  # skipped: no video input


def test_a_text_model_refuses_video_naming_the_capability_and_who_takes_it(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny-text", messages=_ask(video_part(video_uri(clip(1, 4)))))  # type: ignore[arg-type]
    err = e.value.body
    assert err["code"] == "model_capability" and err["param"] == "messages[0].content[1].video_url"  # type: ignore[index]
    assert "capabilities.video" in err["message"] and "demo-vlm" in err["message"]  # type: ignore[index]


def test_too_many_videos_and_bad_urls(base_url: str) -> None:
    two = [{"role": "user", "content": [video_part(video_uri(clip(1, 4))), video_part(video_uri(clip(1, 4)))]}]
    resp = httpx.post(f"{base_url}/chat/completions", json={"model": "demo-vlm", "messages": two}, timeout=30)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "too_many_videos"
    for url, code in [
        ("", "invalid_video_url"),
        ("ftp://x/y.mp4", "invalid_video_url"),
        ("data:image/png;base64,AAAA", "invalid_video_url"),
    ]:
        body = {"model": "demo-vlm", "messages": _ask(video_part(url))}
        err = httpx.post(f"{base_url}/chat/completions", json=body, timeout=30).json()["error"]
        assert err["code"] == code and err["param"] == "messages[0].content[1].video_url", err
