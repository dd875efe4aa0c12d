"""The README's examples, run as written against `mmserve serve` started by its real CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet(kind: str) -> str:
    text = README.read_text()
    m = re.search(rf"<!-- readme-test: {kind} -->\n```\w+\n(.*?)```", text, re.S)
    assert m, f"README has no '{kind}' example"
    return m.group(1)


def test_readme_curl_example(cli_server: str) -> None:
    cmd = _snippet("curl").replace("http://127.0.0.1:8000", cli_server)
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60, check=True).stdout
    body = json.loads(out)
    assert body["object"] == "chat.completion" and body["model"] == "demo-vlm"
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["prompt_tokens"] > 16


def test_readme_python_example(cli_server: str) -> None:
    code = _snippet("python").replace("http://127.0.0.1:8000", cli_server)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "usage: CompletionUsage(completion_tokens=" in out.stdout


def test_readme_speech_example(cli_server: str, tmp_path: Path) -> None:
    code = _snippet("speech").replace("http://127.0.0.1:8000", cli_server)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path
    )
    lines = out.stdout.strip().splitlines()
    assert {"weather", "nice", "today"} <= set(lines[0].split())  # demo-tts -> demo-asr keeps words
    assert len(lines) > 5 and re.match(r"\s*\d+\.\d\d-\s*\d+\.\d\d \w+", lines[1])
    assert (tmp_path / "speech.mp3").stat().st_size > 1000


def test_readme_images_example(cli_server: str, tmp_path: Path) -> None:
    from PIL import Image

    cmd = _snippet("images-curl").replace("http://127.0.0.1:8000", cli_server)
    subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path)
    with Image.open(tmp_path / "sunset.png") as img:
        assert img.format == "PNG" and img.size == (512, 512)


def test_readme_video_example(cli_server: str, tmp_path: Path) -> None:
    code = _snippet("video").replace("http://127.0.0.1:8000", cli_server)
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
        cwd=tmp_path,
    )
    assert "completed 4 256x256" in out.stdout and "frames: 32" in out.stdout
    assert (tmp_path / "video.mp4").stat().st_size > 0


def test_readme_embeddings_example(cli_server: str) -> None:
    code = _snippet("embeddings").replace("http://127.0.0.1:8000", cli_server)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    first, second = out.stdout.strip().splitlines()
    assert first.startswith("32 dimensions, cosine ") and "prompt_tokens=" in first
    assert second == "8 dimensions"


def test_readme_responses_example(cli_server: str) -> None:
    code = _snippet("responses").replace("http://127.0.0.1:8000", cli_server)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=True)
    lines = out.stdout.strip().splitlines()
    call = re.match(r"call: get_weather (\{.*\})$", lines[0])
    assert call and json.loads(call.group(1))["city"] in ("Paris", "Rome"), lines
    assert re.match(r"answer: (completed|incomplete) \d+ tokens in$", lines[1]), lines
    assert re.match(r"streamed: response\.(completed|incomplete) resp_\w+$", lines[-1]), lines


def test_readme_completions_example(cli_server: str) -> None:
    code = _snippet("completions").replace("http://127.0.0.1:8000", cli_server)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("0 ") and "'Once upon a time" in lines[0]
    assert lines[1].startswith("1 ") and "'The weather today" in lines[1]
    assert lines[2].startswith("CompletionUsage(completion_tokens=")


def test_readme_images_stream_example(cli_server: str, tmp_path: Path) -> None:
    code = _snippet("images-stream").replace("http://127.0.0.1:8000", cli_server)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path
    ).stdout
    assert out.splitlines() == [
        "image_generation.partial_image partial-0.png",
        "image_generation.partial_image partial-1.png",
        "image_generation.completed final.png",
    ]
    assert (tmp_path / "final.png").stat().st_size > 0


def test_readme_video_chat_example(cli_server: str, tmp_path: Path) -> None:
    from tests.helpers.clips import clip

    (tmp_path / "clip.mp4").write_bytes(clip(5, 8, (320, 240)))
    code = _snippet("video-chat").replace("http://127.0.0.1:8000", cli_server)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path
    ).stdout
    assert "video_tokens=80" in out and "video_frames=5" in out  # 5 s at 1 fps, 16 tokens a frame
