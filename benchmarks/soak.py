"""Soak: bounded mixed load with faults, counting what was lost and how memory moved.

    python benchmarks/soak.py [--rounds 5] [--seconds 30] [--concurrency 64] [--kill-round 1]

Runs `mmserve serve` (a subprocess, tiny real models: chat with and without images, espeak-ng
speech, PocketSphinx transcription, a diffusers image pipeline, a Wan video pipeline) and sends
it ``--concurrency`` clients of mixed traffic for ``--rounds`` rounds of ``--seconds``, with
faults on a schedule:

- **kill -9** in the middle of ``--kill-round``, then a restart on the same data directory
  (requests in flight then fail to connect or are cut: counted as ``server_down``);
- a client that **disconnects mid-stream** (a chat stream closed after its first event);
- **hostile files** in the mix (a truncated PNG, a JPEG of 500 scans behind a junk byte, a
  decompression-bomb header, an HTML page, a WAV claiming a 1.3 GHz sample rate): each must
  get its 4xx.

It writes benchmarks/results/soak.json: requests by kind and status, unexpected statuses (a
status a kind must never get; 503 ``overloaded`` with Retry-After is expected under this
load), p50/p99 per kind, the server's RSS (with its decode workers) at the end of each round,
video jobs lost (accepted, then unknown or never finished), and usage records lost (fewer
records per model than responses that ended with 200). Goal: 0 unexpected, 0 lost, RSS growth
under 50 MB between round 2 and the last (the kill is in round 1 by default, so rounds 2..N
are one process).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _common import summarize, write_result  # noqa: E402
from tests.helpers import hostile as h  # noqa: E402
from tests.helpers.audio import encode, tone  # noqa: E402
from tests.helpers.images import image_bytes  # noqa: E402
from tests.helpers.process import ServerProcess  # noqa: E402

Q = {"max_concurrency": 2, "max_queue": 512}
CATALOG = {
    "models": [
        {
            "id": "soak-vlm",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:vlm",
            "capabilities": {"vision": True, "max_images": 2},
            "limits": {"max_output_tokens": 16},
            "pricing": {"input_per_1m_tokens": 1.0, "output_per_1m_tokens": 2.0},
            "deployment": {"mode": "dedicated", **Q},
        },
        {
            "id": "soak-image",
            "task": "image-generation",
            "engine": "diffusers-image",
            "source": "demo:image",
            "options": {"quality_steps": {"low": 1, "medium": 1, "high": 1}, "max_steps": 2},
            "capabilities": {"sizes": ["64x64"]},
            "pricing": {"per_image": 0.01},
            "deployment": {"mode": "dedicated", **Q},
        },
        {
            "id": "soak-tts",
            "task": "speech",
            "engine": "espeak-ng",
            "pricing": {"per_audio_second": 0.001},
            "deployment": {"mode": "dedicated", **Q},
        },
        {
            "id": "soak-asr",
            "task": "transcription",
            "engine": "pocketsphinx",
            "capabilities": {"languages": ["en"]},
            "pricing": {"per_audio_second": 0.001},
            "deployment": {"mode": "dedicated", **Q},
        },
        {
            "id": "soak-video",
            "task": "video-generation",
            "engine": "diffusers-video",
            "source": "demo:video",
            "options": {"steps": 1, "guidance_scale": 1.0},
            "capabilities": {"sizes": ["64x48"], "fps": [8], "durations": [0.5]},
            "pricing": {"per_video_second": 0.1},
            "deployment": {"mode": "dedicated", "max_concurrency": 1, "max_queue": 10000},
        },
    ]
}
MODELS = [m["id"] for m in CATALOG["models"]]
# kind -> (weight, model metered, statuses it may get besides 200 and 503 overloaded)
KINDS: dict[str, tuple[int, str | None, set[int]]] = {
    "chat_text": (25, "soak-vlm", set()),
    "chat_stream": (10, "soak-vlm", set()),
    "chat_image": (15, "soak-vlm", set()),
    "tts": (15, "soak-tts", set()),
    "asr": (10, "soak-asr", set()),
    "image": (10, "soak-image", set()),
    "video": (3, None, set()),  # metered when the job completes: counted from the jobs
    "hostile": (8, None, {400, 413, 415, 422}),
    "disconnect": (4, None, set()),
}


def _uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


PNG = _uri(image_bytes((64, 48)), "image/png")
WAV = encode(tone(1.0, rate=16000), 16000, "wav", channels=1)
HOSTILE_IMAGES = [
    _uri(h.truncated(h.encode(h.noisy(), "PNG")), "image/png"),
    _uri(h.with_junk_after_first_segment(h.progressive_jpeg_with_scans(64, 500)), "image/jpeg"),
    _uri(h.jpeg_bomb_header(), "image/jpeg"),
    _uri(h.HTML_PAGE, "image/png"),
]


def _absurd_wav() -> bytes:
    data = bytearray(WAV)
    data[24:28] = (1_325_416_064).to_bytes(4, "little")
    return bytes(data)


def _chat(content: Any, **kw: Any) -> dict[str, Any]:
    return {"model": "soak-vlm", "messages": [{"role": "user", "content": content}], "max_tokens": 8, **kw}


@dataclass
class Tally:
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    unexpected: list[str] = field(default_factory=list)
    ok_by_model: Counter[str] = field(default_factory=Counter)
    video_ids: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, server: ServerProcess, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.tally = Tally()
        self.down = False  # between the kill and the restart's health
        self.rng = random.Random(7)

    async def one(self, client: httpx.AsyncClient) -> None:
        kinds = list(KINDS)
        kind = self.rng.choices(kinds, weights=[KINDS[k][0] for k in kinds])[0]
        url = self.server.url
        start = time.perf_counter()
        try:
            status = await getattr(self, f"_{kind}")(client, url)
        except (httpx.TransportError, httpx.StreamError) as e:
            if self.down or url != self.server.url:
                self.tally.statuses[kind]["server_down"] += 1
                return
            status = f"error:{type(e).__name__}"
        self.tally.latencies[kind].append(time.perf_counter() - start)
        self.tally.statuses[kind][str(status)] += 1
        _, model, extra = KINDS[kind]
        if status == 200 and model is not None:
            self.tally.ok_by_model[model] += 1
        if not (isinstance(status, int) and status in {200, 503} | extra) and not self.down:
            self.tally.unexpected.append(f"{kind}: {status}")

    async def _chat_text(self, c: httpx.AsyncClient, url: str) -> int:
        r = await c.post(f"{url}/v1/chat/completions", json=_chat("Say something about the sea."))
        return r.status_code

    async def _chat_image(self, c: httpx.AsyncClient, url: str) -> int:
        parts = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG}}]
        r = await c.post(f"{url}/v1/chat/completions", json=_chat(parts))
        return r.status_code

    async def _chat_stream(self, c: httpx.AsyncClient, url: str) -> int:
        body = _chat("Count to five.", stream=True)
        async with c.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
            text = (await r.aread()).decode()
        return r.status_code if r.status_code != 200 or text.rstrip().endswith("[DONE]") else 599

    async def _disconnect(self, c: httpx.AsyncClient, url: str) -> int:
        body = _chat("Tell me a long story.", stream=True, max_tokens=16)
        async with c.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
            async for _ in r.aiter_bytes():
                break  # gone after the first event
        return r.status_code

    async def _tts(self, c: httpx.AsyncClient, url: str) -> int:
        body = {"model": "soak-tts", "input": "The quick brown fox.", "voice": "alloy", "response_format": "wav"}
        r = await c.post(f"{url}/v1/audio/speech", json=body)
        return r.status_code

    async def _asr(self, c: httpx.AsyncClient, url: str) -> int:
        files = {"file": ("a.wav", WAV, "audio/wav")}
        r = await c.post(f"{url}/v1/audio/transcriptions", data={"model": "soak-asr"}, files=files)
        return r.status_code

    async def _image(self, c: httpx.AsyncClient, url: str) -> int:
        body = {"model": "soak-image", "prompt": "a red boat", "size": "64x64", "response_format": "b64_json"}
        r = await c.post(f"{url}/v1/images/generations", json=body)
        return r.status_code

    async def _video(self, c: httpx.AsyncClient, url: str) -> int:
        body = {"model": "soak-video", "prompt": "waves", "size": "64x48", "seconds": "0.5", "fps": 8}
        r = await c.post(f"{url}/v1/videos", json=body)
        if r.status_code == 200:
            self.tally.video_ids.append(r.json()["id"])
        return r.status_code

    async def _hostile(self, c: httpx.AsyncClient, url: str) -> int:
        if self.rng.random() < 0.2:
            files = {"file": ("a.wav", _absurd_wav(), "audio/wav")}
            r = await c.post(f"{url}/v1/audio/transcriptions", data={"model": "soak-asr"}, files=files)
            return r.status_code
        image = self.rng.choice(HOSTILE_IMAGES)
        parts = [{"type": "text", "text": "?"}, {"type": "image_url", "image_url": {"url": image}}]
        r = await c.post(f"{url}/v1/chat/completions", json=_chat(parts))
        return r.status_code

    async def run_round(self, index: int) -> None:
        end = time.monotonic() + self.args.seconds
        limits = httpx.Limits(max_connections=self.args.concurrency)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:

            async def worker() -> None:
                while time.monotonic() < end:
                    if self.down:
                        await asyncio.sleep(0.2)
                        continue
                    await self.one(client)

            tasks = [asyncio.create_task(worker()) for _ in range(self.args.concurrency)]
            if index == self.args.kill_round:
                await asyncio.sleep(self.args.seconds / 2)
                self.down = True
                self.server.kill9()
                await asyncio.to_thread(self.server.start, MODELS, 600)
                self.down = False
            await asyncio.gather(*tasks)


def rss_mb(pid: int) -> float:
    """RSS of ``pid`` and its children (the decode workers), in MB."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(c) for c in children)
    return total / 1024


def settle_jobs(url: str, ids: list[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while True:
        for i in ids:
            if states.get(i) in ("completed", "failed", "missing"):
                continue
            r = httpx.get(f"{url}/v1/videos/{i}", timeout=30)
            states[i] = "missing" if r.status_code == 404 else r.json()["status"]
        if all(s in ("completed", "failed", "missing") for s in states.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    counts = Counter(states.values())
    lost = [i for i, s in states.items() if s not in ("completed", "failed")]
    return {"accepted": len(ids), "by_status": dict(counts), "lost": len(lost)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--kill-round", type=int, default=1, help="the round with a kill -9 mid-way (0: none)")
    p.add_argument("--models-cache", default=str(Path(tempfile.gettempdir()) / "mmserve-soak-models"))
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmserve-soak-"))
    data = root / "data"
    data.mkdir()
    cache = Path(args.models_cache)
    cache.mkdir(parents=True, exist_ok=True)
    (data / "models").symlink_to(cache, target_is_directory=True)  # tiny models built once, reused
    config = root / "catalog.yaml"
    config.write_text(yaml.safe_dump(CATALOG))
    server = ServerProcess(data, config, env={"MMSERVE_LOG_LEVEL": "warning"})
    server.start(MODELS, timeout=900)
    soak = Soak(server, args)
    rounds = []
    try:
        for r in range(1, args.rounds + 1):
            t0 = time.monotonic()
            asyncio.run(soak.run_round(r))
            assert server.proc is not None
            rounds.append(
                {
                    "round": r,
                    "rss_mb": round(rss_mb(server.proc.pid), 1),
                    "pid": server.proc.pid,
                    "seconds": round(time.monotonic() - t0, 1),
                    "killed": r == args.kill_round,
                }
            )
            print(f"round {r}: {rounds[-1]}", flush=True)
        jobs = settle_jobs(server.url, soak.tally.video_ids, timeout=600)
        usage = httpx.get(f"{server.url}/v1/usage", timeout=60).json()["data"]
    finally:
        server.stop()
    records = Counter({row["model"]: row["requests"] for row in usage})
    completed_videos = jobs["by_status"].get("completed", 0)
    expected = {**soak.tally.ok_by_model, "soak-video": completed_videos}
    usage_lost = {m: max(0, n - records.get(m, 0)) for m, n in expected.items()}
    steady = [x["rss_mb"] for x in rounds[1:]]
    t = soak.tally
    write_result(
        "soak",
        {
            "rounds": rounds,
            "concurrency": args.concurrency,
            "seconds_per_round": args.seconds,
            "requests_by_kind_and_status": {k: dict(v) for k, v in t.statuses.items()},
            "unexpected": {"count": len(t.unexpected), "examples": Counter(t.unexpected).most_common(10)},
            "latency_by_kind": {k: summarize(v) for k, v in t.latencies.items()},
            "rss_growth_mb_round2_to_last": round(steady[-1] - steady[0], 1) if len(steady) > 1 else None,
            "video_jobs": jobs,
            "usage": {"responses_200": expected, "records": dict(records), "lost": usage_lost},
            "lost_total": jobs["lost"] + sum(usage_lost.values()),
        },
    )


if __name__ == "__main__":
    main()
