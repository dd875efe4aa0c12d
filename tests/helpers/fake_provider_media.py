"""The fake provider's images, speech and transcription endpoints (see :mod:`tests.helpers.fake_provider`).

- ``POST /v1/images/generations`` and ``/v1/images/edits``: solid-colour images of the asked size in
  the asked ``output_format``, as base64 or, with ``response_format: url`` (or ``image_links``), as
  links to ``GET /files/{name}`` on itself (``link_base`` replaces that origin: a link elsewhere);
  usage ``{input_tokens: prompt words, output_tokens: IMAGE_OUTPUT_TOKENS per image}``.
- ``POST /v1/audio/speech``: raw 24 kHz s16le PCM only (anything else is a 400, as mmserve must ask
  for pcm), SPEECH_SECONDS_PER_WORD of a tone per word, in pieces; ``stream_format: sse`` sends
  ``speech.audio.delta`` events and a ``speech.audio.done`` with token usage.
- ``POST /v1/embeddings``: a unit vector seeded by each input (:func:`fake_embedding`), EMBEDDING_DIMENSIONS
  long or ``dimensions``, as JSON floats or base64, listed in reverse (``index`` orders them); usage
  ``prompt_tokens``: words of text inputs + token-id inputs' lengths.
- ``POST /v1/audio/transcriptions`` and ``/translations``: reads the WAV it is sent and answers
  ``transcript_text`` with segments and words (verbose_json) and usage ``{type: duration, seconds:
  the WAV's length rounded up}`` (as whisper-1 bills whole seconds).
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
import wave
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from PIL import Image

if TYPE_CHECKING:
    from tests.helpers.fake_provider import FakeProvider

IMAGE_OUTPUT_TOKENS = 272
SPEECH_RATE = 24000
SPEECH_SECONDS_PER_WORD = 0.25
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def add_media_routes(fake: FakeProvider) -> None:
    app = fake.app

    def images(prompt: str, n: int, size: str, fmt: str, links: bool, color: tuple[int, int, int]) -> dict[str, Any]:
        w, h = (int(x) for x in size.split("x")) if size and size != "auto" else (64, 64)
        data = []
        for i in range(n):
            buf = io.BytesIO()
            Image.new("RGB", (w, h), color).save(buf, {"jpeg": "JPEG", "webp": "WEBP"}.get(fmt, "PNG"))
            if links:
                name = f"img-{len(fake.files)}-{i}.{fmt}"
                fake.files[name] = (buf.getvalue(), CONTENT_TYPES.get(fmt, "image/png"))
                data.append({"url": f"{fake.link_base or fake.url}/files/{name}"})
            else:
                data.append({"b64_json": base64.b64encode(buf.getvalue()).decode()})
        words = len(prompt.split())
        usage = {"input_tokens": words, "output_tokens": IMAGE_OUTPUT_TOKENS * n}
        return {"created": 0, "data": data, "usage": {**usage, "total_tokens": words + IMAGE_OUTPUT_TOKENS * n}}

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Any:
        body = await request.json()
        fake.requests.append(body)
        refused = await fake.check(request)
        if refused is not None:
            return refused
        links = body.get("response_format") == "url" or fake.image_links
        fmt = body.get("output_format", "png")
        return images(body["prompt"], int(body.get("n", 1)), body.get("size", ""), fmt, links, (200, 30, 30))

    @app.post("/v1/images/edits")
    async def edits(request: Request) -> Any:
        form = await request.form()
        files = {k: v for k, v in form.multi_items() if not isinstance(v, str)}
        summary: dict[str, Any] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        summary["files"] = {}
        for name, upload in files.items():
            data = await upload.read()  # type: ignore[union-attr]
            with Image.open(io.BytesIO(data)) as img:
                summary["files"][name] = {"size": img.size, "mode": img.mode, "bytes": data}
        fake.requests.append(summary)
        refused = await fake.check(request)
        if refused is not None:
            return refused
        w, h = next(iter(summary["files"].values()))["size"]
        links = summary.get("response_format") == "url" or fake.image_links
        fmt = str(summary.get("output_format", "png"))
        return images(str(summary["prompt"]), int(summary.get("n", 1)), f"{w}x{h}", fmt, links, (30, 30, 200))

    @app.get("/files/{name}")
    async def file(name: str) -> Any:
        fake.hits.append((time.monotonic(), f"/files/{name}", 200))
        data, content_type = fake.files[name]
        return Response(data, media_type=content_type)

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Any:
        body = await request.json()
        fake.requests.append(body)
        refused = await fake.check(request)
        if refused is not None:
            return refused
        if body.get("response_format") != "pcm":
            return JSONResponse({"error": {"message": "this fake speaks pcm only", "param": "response_format"}}, 400)
        words = len(str(body["input"]).split())
        seconds = SPEECH_SECONDS_PER_WORD * words
        t = np.arange(int(seconds * SPEECH_RATE)) / SPEECH_RATE
        pcm = (np.sin(2 * np.pi * 440 * t) * 0.3 * 32767).astype("<i2").tobytes()
        pieces = [pcm[i : i + 4801] for i in range(0, len(pcm), 4801)]  # odd sizes: samples split across reads

        async def raw() -> Any:
            for i, piece in enumerate(pieces):
                yield piece
                if i == 0:
                    await fake.wait_gate()

        async def sse() -> Any:
            for i, piece in enumerate(pieces):
                yield "data: " + json.dumps({"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()})
                yield "\n\n"
                if i == 0:
                    await fake.wait_gate()
            usage = {"input_tokens": words, "output_tokens": len(pieces), "total_tokens": words + len(pieces)}
            yield "data: " + json.dumps({"type": "speech.audio.done", "usage": usage}) + "\n\n"

        if body.get("stream_format") == "sse":
            return StreamingResponse(sse(), media_type="text/event-stream")
        return StreamingResponse(raw(), media_type="audio/pcm")

    async def transcribe(request: Request, task: str) -> Any:
        form = await request.form()
        upload = form["file"]
        data = await upload.read()  # type: ignore[union-attr]
        with wave.open(io.BytesIO(data)) as w:
            rate, frames, channels, width = w.getframerate(), w.getnframes(), w.getnchannels(), w.getsampwidth()
        duration = frames / rate
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        grains = [v for k, v in form.multi_items() if k == "timestamp_granularities[]"]
        fake.requests.append({**fields, "granularities": grains, "wav": (rate, channels, width, duration)})
        refused = await fake.check(request)
        if refused is not None:
            return refused
        text = fake.transcript_text
        usage = {"type": "duration", "seconds": math.ceil(duration)}
        if fields.get("response_format") == "json":
            return {"text": text, "usage": usage}
        words = text.split()
        step = duration / max(1, len(words))
        half = len(words) // 2 or 1
        return {
            "task": task,
            "language": "english",
            "duration": duration,
            "text": text,
            "segments": [
                {"id": 0, "seek": 0, "start": 0.0, "end": step * half, "text": " ".join(words[:half])},
                {"id": 1, "seek": 0, "start": step * half, "end": duration, "text": " ".join(words[half:])},
            ],
            "words": [{"word": w, "start": i * step, "end": (i + 1) * step} for i, w in enumerate(words)],
            "usage": usage,
        }

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Any:
        return await transcribe(request, "transcribe")

    @app.post("/v1/audio/translations")
    async def translations(request: Request) -> Any:
        return await transcribe(request, "translate")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Any:
        body = await request.json()
        fake.requests.append(body)
        refused = await fake.check(request)
        if refused is not None:
            return refused
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if inputs and all(isinstance(v, int) for v in inputs):
            inputs = [inputs]  # one tokenized text
        dims = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        data = []
        for i, item in enumerate(inputs):
            vector = fake_embedding(item, dims)
            encoded: Any = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if body.get("encoding_format") == "base64"
                else vector.tolist()
            )
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        data.reverse()  # answered out of order: the index says where each goes
        tokens = sum(len(v) if isinstance(v, list) else len(v.split()) for v in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": body["model"], "usage": usage}


EMBEDDING_DIMENSIONS = 32  # as the local demo-embed: a router can mix them


def fake_embedding(item: str | list[int], dims: int) -> np.ndarray:
    """The fake's vector for an input: seeded by its text (or token ids), unit length."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(item)) if isinstance(item, str) else sum(item) + len(item)
    vector = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return vector / np.linalg.norm(vector)
