"""Every example of the seed documents (/work/shared/seeds) against `mmserve serve` with the demo catalog.

Each example is run as written, with only what a migrating user changes: the host (and base
path) and the model, plus placeholders the documents leave empty (``"url": ""``,
``/9j/4AAQSkZJRg...``, ``image.jpg``) filled with real images. Image links point at a loopback
server standing in for the providers' image hosts (tests never leave loopback). The operator
chose DO compatibility for speech (``MMSERVE_SPEECH_ENVELOPE=always``, see docs/api.md).

Not run: seed 000's Python snippets for speech (``response.data[0].b64_json``) and video
(``client.video.generations``) are written for DO's own client, not the openai SDK; their curl
twins are run. The JavaScript snippets of seed 004 run on Node.js with the npm ``openai`` package
(tests/helpers/js_sdk.py).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image

from tests.helpers.httpserver import TargetServer
from tests.helpers.images import image_bytes
from tests.helpers.js_sdk import js_sdk
from tests.helpers.server import free_port
from tests.helpers.videos import mp4_info

DEEPINFRA_IMAGE = "/models/llava-hf/llava-1.5-7b-hf/" + (
    "cover_image.ed4fba7a25b147e7fe6675e9f760585e11274e8ee72596e6412447260493cd4f-s600.webp"
)
DEEPINFRA_IMAGE_2 = (
    "/models/meta-llama/Llama-2-7b-chat-hf/cover_image.10373e7a429dd725e0eb9e57cd20aeb815426c077217b27d9aedce37bd5c2173"
    "-s600.webp"
)
UNSPLASH_IMAGE = (
    "/photo-1720884413532-59289875c3e1?q=80&w=3024&auto=format&fit=crop&ixlib=rb-4.1.0&ixid="
    "M3wxMjA3fDB8MHxwaG90by1wYWdlfHx8fGVufDB8fHx8fA%3D%3D"
)
# README's 16x16 red cross (seed 003's answer describes "a red cross symbol")
RED_CROSS = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAANUlEQVR42mP8//8/AymAiYFEwIIpdJeREc5WxrCfZBtor4"
    "EREkrI7sYFIP4ZvH4YDvFAQxsAvN0VE/1kM0YAAAAASUVORK5CYII="
)


def _photo(size: tuple[int, int], fmt: str) -> bytes:
    img = Image.new("RGB", size, (40, 140, 200))
    img.paste((230, 120, 30), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_host() -> Iterator[TargetServer]:
    """Stands in for shared.deepinfra.com and images.unsplash.com."""
    server = TargetServer("127.0.0.1").start()
    server.routes[DEEPINFRA_IMAGE] = (200, {"Content-Type": "image/webp"}, _photo((600, 400), "WEBP"))
    server.routes[DEEPINFRA_IMAGE_2] = (200, {"Content-Type": "image/webp"}, _photo((600, 600), "WEBP"))
    server.routes[UNSPLASH_IMAGE] = (200, {"Content-Type": "image/jpeg"}, _photo((3024, 2016), "JPEG"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def serve(data_dir: Path) -> Iterator[str]:
    """`mmserve serve` (the real CLI) on the demo catalog, with DO's speech envelope chosen by the operator."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMSERVE_")}
    env["MMSERVE_SPEECH_ENVELOPE"] = "always"
    env["MMSERVE_FETCH__ALLOW_NETWORKS"] = '["127.0.0.1/32"]'  # the stand-in image hosts
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmserve.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                models = httpx.get(f"{url}/health", timeout=2).json()["models"]
                if all(models.get(m) == "loaded" for m in ("demo-vlm", "demo-image", "demo-video")):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise TimeoutError("mmserve serve did not come up")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _bash(script: str, *, cwd: Path | None = None, timeout: float = 120) -> str:
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=timeout, check=True, cwd=cwd
    ).stdout


def _python(code: str, *, cwd: Path, timeout: float = 180) -> str:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _chat_ok(body: dict) -> None:
    assert body.get("object") == "chat.completion", body
    assert body["choices"][0]["message"]["content"] and body["usage"]["prompt_tokens"] > 16


# ---------------------------------------------------------------- seed 000 (DO)


def test_000_vlm_curl(serve: str) -> None:
    jpeg = base64.b64encode(_photo((320, 240), "JPEG")).decode()
    body = _bash(f"""curl {serve}/v1/chat/completions \\
-H "Authorization: Bearer $MODEL_ACCESS_KEY" \\
-H "Content-Type: application/json" \\
-d '{{
"model": "demo-vlm",
"messages": [
{{
"role": "user",
"content": [
{{"type": "text", "text": "What is shown in this image?"}},
{{"type": "image_url", "image_url": {{"url": "data:image/jpeg;base64,{jpeg}"}}}}
]
}}
],
"max_tokens": 512,
"temperature": 0.7
}}'""")
    _chat_ok(json.loads(body))


def test_000_vlm_python(serve: str, tmp_path: Path) -> None:
    (tmp_path / "image.jpg").write_bytes(_photo((320, 240), "JPEG"))
    out = _python(
        f"""from openai import OpenAI
client = OpenAI(base_url="{serve}/v1", api_key="unused")
import base64
with open("image.jpg", "rb") as f:
    image_data = base64.b64encode(f.read()).decode("utf-8")
response = client.chat.completions.create(
    model="demo-vlm",
    messages=[
        {{
            "role": "user",
            "content": [
                {{"type": "text", "text": "Describe this image."}},
                {{"type": "image_url",
                "image_url": {{"url": f"data:image/jpeg;base64,{{image_data}}"}}}}
            ]
        }}
    ]
)
print(response.choices[0].message.content)
""",
        cwd=tmp_path,
    )
    assert out.strip()


def test_000_images_curl_and_python(serve: str, tmp_path: Path) -> None:
    body = json.loads(
        _bash(
            f"""curl {serve}/v1/images/generations \\
-H "Authorization: Bearer $MODEL_ACCESS_KEY" \\
-H "Content-Type: application/json" \\
-d '{{
"model": "demo-image",
"prompt": "A sunset over mountains",
"n": 1,
"size": "1024x1024",
"quality": "auto",
"response_format": "b64_json",
"background": "auto",
"output_format": "png"
}}'""",
            timeout=300,
        )
    )
    assert body["usage"]["total_tokens"] > 0 and len(body["data"]) == 1
    assert Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"]))).size == (1024, 1024)
    _python(
        f"""from openai import OpenAI
client = OpenAI(base_url="{serve}/v1", api_key="unused")
import base64
response = client.images.generate(
    model="demo-image",
    prompt="A sunset over mountains",
    n=1,
    size="1024x1024",
    quality="auto",
    response_format="b64_json"
)
image_bytes = base64.b64decode(response.data[0].b64_json)
with open("output.png", "wb") as f:
    f.write(image_bytes)
""",
        cwd=tmp_path,
        timeout=300,
    )
    assert Image.open(tmp_path / "output.png").size == (1024, 1024)


def test_000_tts_curl(serve: str) -> None:
    body = json.loads(
        _bash(f"""curl {serve}/v1/audio/speech \\
-H "Authorization: Bearer $MODEL_ACCESS_KEY" \\
-H "Content-Type: application/json" \\
-d '{{
"model": "demo-tts",
"input": "Hello, world!",
"voice": "alloy",
"response_format": "mp3",
"speed": 1.0
}}'""")
    )
    audio = base64.b64decode(body["data"][0]["b64_json"])
    with av.open(io.BytesIO(audio), format="mp3") as f:
        assert sum(fr.samples for fr in f.decode(audio=0)) > 12000  # over half a second at 24 kHz


def test_000_video_curl_1280x720_at_16_fps_with_progress(serve: str) -> None:
    job = json.loads(
        _bash(f"""curl -X POST {serve}/v1/videos \\
-H "Authorization: Bearer $MODEL_ACCESS_KEY" \\
-H "Content-Type: application/json" \\
-d '{{
"model": "demo-video",
"prompt": "Two anthropomorphic cats in boxing gear fight intensely on a spotlighted stage",
"size": "1280x720",
"fps": 16
}}'""")
    )
    assert job["status"] in ("queued", "in_progress") and job["size"] == "1280x720"
    seen: list[int] = []
    deadline = time.monotonic() + 600
    while True:
        result = json.loads(_bash(f'curl {serve}/v1/video/generations/{job["id"]} -H "Authorization: Bearer x"'))
        seen.append(result["progress"])
        if result["status"] in ("completed", "failed"):
            break
        assert time.monotonic() < deadline, f"not done: {result}"
        time.sleep(0.5)
    assert result["status"] == "completed", result["error"]
    assert seen == sorted(seen) and any(0 < p < 100 for p in seen), seen  # progress moves
    data = httpx.get(result["output"]["url"], timeout=60).content  # the presigned URL of the completed status
    assert mp4_info(data) == (64, 1280, 720, 16.0, "h264")  # 4 s (the card's first duration) x 16 fps


def test_openai_video_sizes_and_lengths(serve: str) -> None:
    """OpenAI's 720x1280 / 1280x720 at 4, 8 and 12 s on demo-video (one made, the others accepted)."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{serve}/v1", api_key="unused", max_retries=0)
    video = client.videos.create_and_poll(model="demo-video", prompt="a tall lighthouse", size="720x1280", seconds="4")
    assert video.status == "completed" and (video.size, video.seconds) == ("720x1280", "4")
    assert mp4_info(client.videos.download_content(video.id).read()) == (64, 720, 1280, 16.0, "h264")
    for size, seconds in (("1280x720", "8"), ("720x1280", "12")):
        queued = client.videos.create(model="demo-video", prompt="waves", size=size, seconds=seconds)
        assert (queued.size, queued.seconds) == (size, seconds)
        client.videos.delete(queued.id)


# ---------------------------------------------------------------- seeds 001 / 002 (DeepInfra)


def test_001_curl_with_image_urls(serve: str, image_host: TargetServer) -> None:
    one = image_host.url(DEEPINFRA_IMAGE)
    body = _bash(f"""curl "{serve}/v1/openai/chat/completions" \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer $DEEPINFRA_TOKEN" \\
  -d '{{
    "model": "demo-vlm",
    "messages": [
      {{
        "role": "user",
        "content": [
          {{
            "type": "image_url",
            "image_url": {{
              "url": "{one}"
            }}
          }},
          {{
            "type": "text",
            "text": "What’s in this image?"
          }}
        ]
      }}
    ]
  }}'""")
    _chat_ok(json.loads(body))
    two = image_host.url(DEEPINFRA_IMAGE_2)
    body = json.loads(
        _bash(f"""curl "{serve}/v1/openai/chat/completions" \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer $DEEPINFRA_TOKEN" \\
  -d '{{
    "model": "demo-vlm",
    "messages": [
      {{
        "role": "user",
        "content": [
          {{"type": "image_url", "image_url": {{"url": "{one}"}}}},
          {{"type": "image_url", "image_url": {{"url": "{two}"}}}},
          {{"type": "text", "text": "What’s in this image?"}}
        ]
      }}
    ]
  }}'""")
    )
    _chat_ok(body)
    assert body["usage"]["prompt_tokens"] >= 32  # two images of 16 tokens each


def test_001_python_base64(serve: str, image_host: TargetServer, tmp_path: Path) -> None:
    out = _python(
        f"""from openai import OpenAI
import base64
import requests

# Create an OpenAI client with your deepinfra token and endpoint
openai = OpenAI(
    api_key="<your-DeepInfra-API-token>",
    base_url="{serve}/v1/openai",
)

image_url = "{image_host.url(DEEPINFRA_IMAGE)}"
base64_image = base64.b64encode(requests.get(image_url).content).decode("utf-8")

chat_completion = openai.chat.completions.create(
    model="demo-vlm",
    messages=[
        {{
            "role": "user",
            "content": [
                {{
                    "type": "image_url",
                    "image_url": {{
                        "url": f"data:image/jpeg;base64,{{base64_image}}"
                    }}
                }},
                {{
                    "type": "text",
                    "text": "What’s in this image?"
                }}
            ]
        }}
    ]
)

print(chat_completion.choices[0].message.content)
""",
        cwd=tmp_path,
    )
    assert out.strip()


# ---------------------------------------------------------------- seed 003 (Pharia)


def test_003_curl(serve: str) -> None:
    out = _bash(f"""curl -L '{serve}/v1/chat/completions' \\
-H 'Content-Type: application/json' \\
-H 'Accept: application/json' \\
-H "Authorization: Bearer $PHARIA_TOKEN" \\
-d '{{
"model": "demo-vlm",
"messages": [
{{
"role": "system",
"content": "You are a helpful assistant."
}},
{{
"role": "user",
"content": [
{{
"type": "text",
"text": "What is in this image? Answer in 20 words or less."
}},
{{
"type": "image_url",
"image_url": {{
"url": "{RED_CROSS}"
}}
}}
]
}}
]
}}' | jq""")
    _chat_ok(json.loads(out))


def test_003_aleph_alpha_client(serve: str, tmp_path: Path) -> None:
    pytest.importorskip("aleph_alpha_client")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "cat.jpg").write_bytes(_photo((640, 480), "JPEG"))
    out = _python(
        f"""import os
from aleph_alpha_client.aleph_alpha_client import Client
from aleph_alpha_client.chat import ChatRequest, Message, Role
from PIL import Image

client = Client(
    host="{serve}",
    token=os.environ.get("PHARIA_TOKEN", "unused"),
)

# example vision model
model = "demo-vlm"
messages = [
    Message(
        role=Role.System,
        content="You are a helpful assistant."),
    Message(
        role=Role.User,
        content=[
            "Describe the following image. Answer in 20 words or less.",
            Image.open("files/cat.jpg"),
        ],
    ),
]
chat_request = ChatRequest(model=model, messages=messages)
response = client.chat(request=chat_request, model=model)
content = response.message.content
print(content)
""",
        cwd=tmp_path,
    )
    assert out.strip()  # (the document's `assert " cat " in content` needs a real model)


# ---------------------------------------------------------------- seed 004 (Gravix Layer)


def test_004_curl_with_url(serve: str, image_host: TargetServer) -> None:
    body = _bash(f"""curl -X POST {serve}/v1/inference/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer $GRAVIXLAYER_API_KEY" \\
  -d '{{
    "model": "demo-vlm",
    "messages": [
      {{
        "role": "user",
        "content": [
          {{
            "type": "text",
            "text": "Can you describe this image?"
          }},
          {{
            "type": "image_url",
            "image_url": {{
              "url": "{image_host.url(UNSPLASH_IMAGE)}"
            }}
          }}
        ]
      }}
    ]
  }}'""")
    _chat_ok(json.loads(body))


def test_004_python_url_and_streaming_base64(serve: str, image_host: TargetServer, tmp_path: Path) -> None:
    (tmp_path / "image.jpg").write_bytes(image_bytes((200, 150), fmt="JPEG"))
    out = _python(
        f"""import json
import os
from openai import OpenAI

# Initialize the OpenAI client
client = OpenAI(
    base_url="{serve}/v1/inference",
    api_key=os.environ.get("GRAVIXLAYER_API_KEY", "unused"),
)

response = client.chat.completions.create(
    model="demo-vlm",
    messages=[{{
        "role": "user",
        "content": [{{
            "type": "text",
            "text": "Can you describe this image?",
        }}, {{
            "type": "image_url",
            "image_url": {{
                "url": "{image_host.url(UNSPLASH_IMAGE)}"
            }},
        }}],
    }}],
)

print(response.choices[0].message.content)
""",
        cwd=tmp_path,
    )
    assert out.strip()
    out = _python(
        f"""import json
import os
import base64
from openai import OpenAI

# Initialize the OpenAI client
client = OpenAI(
    base_url="{serve}/v1/inference",
    api_key=os.environ.get("GRAVIXLAYER_API_KEY", "unused"),
)

getDescriptionPrompt = "what is in the image"
imagePath = "image.jpg"

def encode_image(image_path):
    with open(image_path, "rb") as image_file:
        return base64.b64encode(image_file.read()).decode('utf-8')

base64_image = encode_image(imagePath)

stream = client.chat.completions.create(
    model="demo-vlm",
    messages=[
        {{
            "role": "user",
            "content": [
                {{"type": "text", "text": getDescriptionPrompt}},
                {{
                    "type": "image_url",
                    "image_url": {{
                        "url": f"data:image/png;base64,{{base64_image}}",
                    }},
                }},
            ],
        }}
    ],
    stream=True,
)

for chunk in stream:
    print(chunk.choices[0].delta.content or "" if chunk.choices else "", end="", flush=True)
""",
        cwd=tmp_path,
    )
    assert out.strip()


def test_004_javascript_url_and_streaming_local_image(serve: str, image_host: TargetServer, tmp_path: Path) -> None:
    """Both JavaScript snippets as written, on Node.js with the openai SDK: what a user changes is the
    base URL, the model, the image's address and path, and a key in the variable they read."""
    (tmp_path / "node_modules").symlink_to(js_sdk(), target_is_directory=True)
    (tmp_path / "image.jpg").write_bytes(image_bytes((200, 150), fmt="JPEG"))
    (tmp_path / "url.mjs").write_text(f"""import {{ OpenAI }} from 'openai';
const client = new OpenAI({{
baseURL: "{serve}/v1/inference",
apiKey: process.env.GRAVIXLAYER_API_KEY,
}});
const response = await client.chat.completions.create({{
model: "demo-vlm",
messages: [{{
role: "user",
content: [{{
type: "text",
text: "Can you describe this image?",
}}, {{
type: "image_url",
image_url: {{
url: "{image_host.url(UNSPLASH_IMAGE)}"
}},
}}],
}}],
}});
console.log(response.choices[0].message.content);
""")
    (tmp_path / "local.mjs").write_text(f"""import {{ OpenAI }} from 'openai';
import fs from 'fs';
const client = new OpenAI({{
baseURL: "{serve}/v1/inference",
apiKey: process.env.GRAVIXLAYER_API_KEY,
}});
const getDescriptionPrompt = "what is in the image";
const imagePath = "image.jpg";
function encodeImage(imagePath) {{
const imageBuffer = fs.readFileSync(imagePath);
return imageBuffer.toString('base64');
}}
const base64Image = encodeImage(imagePath);
const stream = await client.chat.completions.create({{
model: "demo-vlm",
messages: [
{{
role: "user",
content: [
{{ type: "text", text: getDescriptionPrompt }},
{{
type: "image_url",
image_url: {{
url: `data:image/jpeg;base64,${{base64Image}}`,
}},
}},
],
}}
],
stream: true,
}});
for await (const chunk of stream) {{
if (chunk.choices[0]?.delta?.content) {{
process.stdout.write(chunk.choices[0].delta.content);
}}
}}
""")
    env = {**os.environ, "GRAVIXLAYER_API_KEY": "unused"}
    for script in ("url.mjs", "local.mjs"):
        run = subprocess.run(["node", script], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.strip(), script  # the model's answer, printed (streamed: written piece by piece)


def test_004_local_image_curl_with_unwrapped_base64(serve: str, tmp_path: Path) -> None:
    """The local-image curl, its base64 on one line (`base64 -w0`: what the error for wrapped base64 says)."""
    (tmp_path / "image.jpg").write_bytes(image_bytes((200, 150), fmt="JPEG"))
    out = _bash(
        f"""BASE64_IMAGE=$(base64 -w0 "image.jpg")
curl -X POST "{serve}/v1/inference/chat/completions" \\
-H "Content-Type: application/json" \\
-H "Authorization: Bearer $GRAVIXLAYER_API_KEY" \\
-d "{{
\\"model\\": \\"demo-vlm\\",
\\"messages\\": [
{{
\\"role\\": \\"user\\",
\\"content\\": [
{{
\\"type\\": \\"text\\",
\\"text\\": \\"what is in the image\\"
}},
{{
\\"type\\": \\"image_url\\",
\\"image_url\\": {{
\\"url\\": \\"data:image/jpeg;base64,$BASE64_IMAGE\\"
}}
}}
]
}}
],
\\"stream\\": false
}}" \\
--max-time 60 \\
--retry 2 | jq -r '.choices[0].message.content'""",
        cwd=tmp_path,
    )
    assert out.strip() and out.strip() != "null"
