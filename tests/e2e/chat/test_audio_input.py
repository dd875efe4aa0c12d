"""input_audio parts through the openai SDK: a tiny Qwen2-Audio hears them; other models say who can."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers.audio import encode, tone, wav_bytes


@pytest.fixture
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _ask(data: str, fmt: str = "wav", text: str = "What is said in this recording?") -> list[dict]:
    part = {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
    return [{"role": "user", "content": [{"type": "text", "text": text}, part]}]


def audio_tokens(seconds: float) -> int:
    """Qwen2-Audio's count: 100 mel frames a second, halved by the conv stem, then by pooling."""
    frames = int(seconds * 100)
    return (((frames - 1) // 2 + 1) - 2) // 2 + 1


@pytest.mark.parametrize(("fmt", "seconds"), [("wav", 4.0), ("mp3", 2.0)])
def test_an_audio_model_hears_wav_and_mp3(client: OpenAI, fmt: str, seconds: float) -> None:
    data = wav_bytes(tone(seconds, 22050), 22050) if fmt == "wav" else encode(tone(seconds, 44100), 44100, "mp3")
    r = client.chat.completions.create(model="demo-audio", messages=_ask(_b64(data), fmt), max_tokens=8)  # type: ignore[arg-type]
    assert r.choices[0].message.content and r.model == "demo-audio"
    details = r.usage.prompt_tokens_details.model_dump()  # type: ignore[union-attr]
    assert abs(details["audio_tokens"] - audio_tokens(seconds)) <= 2  # mp3 adds encoder padding
    assert r.usage.prompt_tokens > details["audio_tokens"]  # type: ignore[union-attr]


def test_streaming_and_a_data_uri_and_two_clips(client: OpenAI) -> None:
    clip = _b64(wav_bytes(tone(1.0, 16000), 16000))
    messages = _ask("data:audio/wav;base64," + clip)
    messages[0]["content"].append({"type": "input_audio", "input_audio": {"data": clip, "format": "wav"}})
    stream = client.chat.completions.create(
        model="demo-audio",
        messages=messages,
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    usage = [c.usage for c in stream if c.usage][-1]
    assert usage.prompt_tokens_details.model_dump()["audio_tokens"] == 2 * audio_tokens(1.0)  # type: ignore[union-attr]


def test_auto_routes_audio_to_a_model_that_hears(base_url: str) -> None:
    body = {"model": "auto", "messages": _ask(_b64(wav_bytes(tone(1.0, 16000), 16000))), "max_tokens": 2}
    resp = httpx.post(f"{base_url}/chat/completions", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == "demo-audio"


def test_a_model_that_cannot_hear_names_the_capability_the_part_and_who_can(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="demo-vlm", messages=_ask(_b64(wav_bytes(tone(1.0, 16000), 16000))))  # type: ignore[arg-type]
    err = e.value.body
    assert err["code"] == "model_capability" and err["param"] == "messages[0].content[1].input_audio"  # type: ignore[index]
    assert "capabilities.audio_input" in err["message"] and "demo-audio" in err["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "status", "code", "param"),
    [
        ("not base64!", 400, "invalid_base64", "messages[0].content[1].input_audio.data"),
        (_b64(b"hello, not audio"), 415, "unsupported_media_type", "messages[0].content[1].input_audio.data"),
        (_b64(wav_bytes(tone(31.0, 8000), 8000)), 400, "audio_too_long", "messages[0].content[1].input_audio.data"),
        (_b64(b"RIFF\x00\x00\x00\x00WAVEfmt "), 400, "invalid_audio", "messages[0].content[1].input_audio.data"),
        ("", 400, "invalid_audio", "messages[0].content[1].input_audio.data"),
    ],
    ids=["base64", "not-audio", "too-long", "corrupt", "empty"],
)
def test_bad_audio_is_a_4xx_naming_the_part(base_url: str, data: str, status: int, code: str, param: str) -> None:
    resp = httpx.post(
        f"{base_url}/chat/completions",
        json={"model": "demo-audio", "messages": _ask(data), "max_tokens": 2},
        timeout=60,
    )
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["param"] == param, err


def test_format_must_be_wav_or_mp3_and_too_many_clips(base_url: str) -> None:
    clip = _b64(wav_bytes(tone(0.5, 16000), 16000))
    resp = httpx.post(f"{base_url}/chat/completions", json={"model": "demo-audio", "messages": _ask(clip, "flac")})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "messages[0].content[1].input_audio.format"
    messages = _ask(clip)
    messages[0]["content"] += [{"type": "input_audio", "input_audio": {"data": clip, "format": "wav"}}] * 2
    resp = httpx.post(f"{base_url}/chat/completions", json={"model": "demo-audio", "messages": messages})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "too_many_audios"


def test_heard_seconds_are_metered(client: OpenAI, base_url: str) -> None:
    import time

    before = _heard(base_url)
    client.chat.completions.create(
        model="demo-audio",
        messages=_ask(_b64(wav_bytes(tone(3.0, 16000), 16000))),  # type: ignore[arg-type]
        max_tokens=2,
    )
    time.sleep(1.0)  # usage is written in batches
    assert _heard(base_url) - before == pytest.approx(3.0, abs=0.05)


def _heard(base_url: str) -> float:
    rows = httpx.get(f"{base_url}/usage", params={"model": "demo-audio"}, timeout=30).json()["data"]
    return sum(r["audio_seconds"] for r in rows)
