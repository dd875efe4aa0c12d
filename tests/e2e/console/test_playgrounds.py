"""The playgrounds against the demo models: chat with an image, images, speech, transcription, video, compare."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.console.conftest import ConsolePage
from tests.helpers.process import ServerProcess


def _png(path: Path, size: tuple[int, int] = (96, 64)) -> Path:
    img = Image.new("RGB", size, (30, 120, 200))
    img.paste((220, 40, 40), (20, 10, 60, 50))
    img.save(path)
    return path


def _stats(page) -> dict[str, str]:  # type: ignore[no-untyped-def]
    dds = page.locator(".request [data-stat]")
    return {dds.nth(i).get_attribute("data-stat"): dds.nth(i).inner_text() for i in range(dds.count())}


def test_chat_streams_an_answer_to_an_uploaded_image(console: ConsolePage, tmp_path: Path) -> None:
    page = console.open("chat")
    sse = []
    page.on("response", lambda r: r.url.endswith("/v1/chat/completions") and sse.append(r.headers["content-type"]))
    page.select_option("select[name=model]", "demo-vlm")
    page.fill("textarea[name=prompt]", "What is shown in this image?")
    page.set_input_files("input[name=attach]", str(_png(tmp_path / "cross.png")))
    page.wait_for_selector(".thumbs img")
    # count the answer's updates: a streamed answer grows in several steps
    page.evaluate("""() => { window.__updates = 0; new MutationObserver(() => window.__updates++)
        .observe(document.querySelector('.log'), {subtree: true, childList: true, characterData: true}); }""")
    page.click("button:text('Send')")
    page.wait_for_selector(".request [data-stat=cost]")
    answer = page.locator(".msg.assistant .answer").inner_text()
    assert answer.strip()
    assert page.evaluate("window.__updates") > 3
    assert sse == ["text/event-stream; charset=utf-8"]
    assert page.locator(".msg.user img.inline").count() == 1
    stats = _stats(page)
    assert stats["model"] == "demo-vlm"
    assert stats["latency"].endswith(("ms", "s")) and stats["first token"]
    assert "input tokens" in stats["usage"] and int(stats["usage"].split("input tokens ")[1].split(",")[0]) > 16
    assert stats["cost"].startswith("$")
    code = page.locator(".request pre").inner_text()
    assert "curl -sN" in code and '"image_url"' in code and "data:image/png;base64," in code
    page.click(".request .tab:text('Python')")
    py = page.locator(".request pre").inner_text()
    assert "client.chat.completions.create(" in py and "stream=True" in py
    console.shot("answer")
    assert console.unexpected_errors() == []


def test_chat_pretty_prints_a_json_schema_answer(console: ConsolePage) -> None:
    page = console.open("chat")
    page.select_option("select[name=model]", "demo-tools")
    page.fill("textarea[name=prompt]", "Rate mmserve from 1 to 5.")
    page.click("summary:text('Reasoning, tools and JSON output')")
    page.select_option("select[name=response_format]", "json_schema")
    page.click("button:text('Send')")
    page.wait_for_selector(".request [data-stat=cost]")
    answer = page.locator(".msg.assistant .answer.json").inner_text()
    assert '"stars"' in answer and "\n" in answer  # parsed and indented
    assert console.unexpected_errors() == []


def test_image_is_generated_shown_and_edited_with_a_painted_mask(console: ConsolePage) -> None:
    page = console.open("images")
    page.select_option("select[name=model]", "demo-image")
    page.select_option("select[name=size]", "256x256")
    page.fill("textarea[name=prompt]", "A sunset over mountains")
    page.click("button:text('Generate')")
    img = page.locator("img.generated").first
    img.wait_for()
    page.wait_for_function("() => document.querySelector('img.generated').naturalWidth > 0")
    assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [256, 256]
    assert _stats(page)["cost"] == "$0.0020"
    console.shot("generated")

    page.click("figcaption button:text('edit')")
    canvas = page.locator("canvas.paint")
    canvas.wait_for()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    with page.expect_request("**/v1/images/edits") as req:
        page.click("form button[type=submit]")
    assert req.value.headers["content-type"].startswith("multipart/form-data")
    page.wait_for_selector(".request [data-stat=cost]")
    assert "-F 'mask=@mask.png'" in page.locator(".request pre").inner_text()
    page.wait_for_function("() => document.querySelector('img.generated').naturalWidth > 0")
    # only the painted stroke (top left to the centre) was repainted: the far corner is the input's
    changed = page.evaluate("""() => {
        const px = (img, x, y) => {
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            return [...g.getImageData(x, y, 1, 1).data];
        };
        const src = document.querySelector('.stage img'), out = document.querySelector('img.generated');
        const same = (x, y) => px(src, x, y).join() === px(out, x, y).join();
        return {corner: same(240, 240), stroke: same(70, 70) && same(60, 60) && same(80, 80)};
    }""")
    assert changed == {"corner": True, "stroke": False}
    console.shot("edited")
    assert console.unexpected_errors() == []


@pytest.mark.parametrize(("fmt", "stream"), [("mp3", True), ("pcm", True), ("wav", False)])
def test_speech_plays(console: ConsolePage, fmt: str, stream: bool) -> None:
    page = console.open("speech")
    page.select_option("select[name=model]", "demo-tts")
    assert page.locator("datalist#voices option").count() > 50  # espeak-ng's voices, from /v1/models
    page.select_option("select[name=response_format]", fmt)
    page.locator("input[name=stream]").set_checked(stream)
    page.click("button:text('Speak')")
    page.wait_for_selector(".request [data-stat=cost]")
    page.wait_for_function(
        "() => { const a = document.querySelector('audio.player'); return a.duration > 0 && isFinite(a.duration); }"
    )
    duration = page.evaluate("document.querySelector('audio.player').duration")
    assert 1.0 < duration < 10.0
    stats = _stats(page)
    assert "seconds" in stats["usage"] and stats["cost"].startswith("$")
    if stream:
        assert stats["first audio"]
    console.shot(fmt)
    assert console.unexpected_errors() == []


def test_transcription_shows_segments_with_times(console: ConsolePage, server: ServerProcess, tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    r = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "demo-tts", "input": "The weather is nice today.", "voice": "sage", "response_format": "wav"},
        timeout=60,
    )
    wav.write_bytes(r.content)
    page = console.open("transcribe")
    page.set_input_files("input[name=file]", str(wav))
    page.click("button:text('Transcribe')")
    page.wait_for_selector(".transcript table.segments tbody tr")
    assert page.locator(".transcript .text").inner_text().strip()
    start, end = page.locator(".transcript table.segments tbody tr").first.locator("td.num").all_inner_texts()
    assert 0 <= float(start) < float(end)
    assert "-F 'timestamp_granularities[]=segment'" in page.locator(".request pre").inner_text()
    console.shot("segments")
    assert console.unexpected_errors() == []


def test_video_progress_moves_and_the_video_plays(console: ConsolePage) -> None:
    page = console.open("video")
    media: list[tuple[str, int, str | None]] = []
    page.on(
        "response",
        lambda r: "/v1/artifacts/" in r.url and media.append((r.url, r.status, r.request.headers.get("authorization"))),
    )
    page.select_option("select[name=model]", "demo-video")
    page.select_option("select[name=seconds]", "4")
    page.select_option("select[name=size]", "256x256")
    page.select_option("select[name=fps]", "8")
    page.click("button:text('Generate')")
    page.wait_for_function("() => document.querySelector('.status').textContent.includes('completed')", timeout=120_000)
    seen = [int(v) for v in page.locator("progress.bar").get_attribute("data-seen").split(",")]
    assert seen[-1] == 100 and len(set(seen)) >= 3 and seen == sorted(seen)
    page.wait_for_function(
        "() => { const v = document.querySelector('video.player'); return v.readyState >= 2 && v.currentTime > 0; }"
    )
    video = page.locator("video.player").evaluate("v => [v.duration, v.videoWidth, v.videoHeight]")
    assert abs(video[0] - 4.0) < 0.3 and video[1:] == [256, 256]
    assert page.locator("img.thumb-lg").evaluate("i => i.naturalWidth") == 256
    assert _stats(page)["cost"] == "$0.0400"  # the server's usage.cost: 4 s at $0.01
    # the player streams the signed link itself (Range requests, 206), with no key and no blob copy
    src = page.locator("video.player").evaluate("v => v.currentSrc")
    assert "/v1/artifacts/" in src and "signature=" in src
    assert any(u == src and status == 206 for u, status, _ in media), media
    assert all(auth is None for _, _, auth in media)
    console.shot("played")
    assert console.unexpected_errors() == []


def test_compare_answers_side_by_side(console: ConsolePage) -> None:
    page = console.open("compare")
    page.fill("textarea[name=prompt]", "Say hello.")
    page.click("button:text('Send to all')")
    # every checked chat model (the first three) answers: wait until no column is still running. (It
    # waited for exactly 2 done, from when the catalog had two chat models: with three, it timed out
    # whenever the last two finished between the same two polls.)
    page.wait_for_function(
        "() => { const c = document.querySelectorAll('.col'); return c.length > 0 && "
        "[...c].every((x) => x.matches('.done, .failed')); }",
        timeout=120_000,
    )
    checked = page.locator("input[name=models]:checked").evaluate_all("bs => bs.map((b) => b.value)")
    assert len(checked) >= 2 and "demo-vlm" in checked
    assert page.locator(".col").evaluate_all("cs => cs.map((c) => c.dataset.model)") == checked
    assert page.locator(".col.failed").count() == 0
    for col in page.locator(".col").all():
        assert col.locator("[data-stat=latency]").inner_text()
        assert " in / " in col.locator("[data-stat=tokens]").inner_text()
        assert col.locator("[data-stat=cost]").inner_text().startswith("$")
    console.shot("columns")
    assert console.unexpected_errors() == []


def test_transcription_of_a_microphone_recording(console: ConsolePage) -> None:
    # Chromium's fake capture device (a beep) stands in for the microphone
    page = console.open("transcribe")
    page.click("button:text('Record')")
    page.wait_for_selector("button:text('Stop')")
    page.wait_for_timeout(1500)
    page.click("button:text('Stop')")
    page.wait_for_function("() => document.querySelector('.card audio.player').src.startsWith('blob:')")
    page.select_option("select[name=response_format]", "json")
    page.click("button:text('Transcribe')")
    page.wait_for_selector(".request [data-stat=latency]")
    assert page.locator("main .error").count() == 0
    assert "-F 'file=@recording.webm'" in page.locator(".request pre").inner_text()
    stats = _stats(page)
    assert float(stats["usage"].split("seconds ")[1].split(",")[0]) > 1.0  # the server decoded the WebM/Opus
    assert console.unexpected_errors() == []
