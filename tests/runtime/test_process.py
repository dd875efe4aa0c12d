"""Replicas in worker processes (a card's ``deployment.process: true``), behind a real `mmserve serve`.

Each worker card has an in-process twin with the same model: what a client gets through the
worker (text, tokens, images, audio, vectors) equals what the twin answers. Then the worker's
life: its own process, a client leaving (the row stops there), an engine failure, the worker
killed (-9) while idle and mid-stream, and the gateway stopping (no worker outlives it).
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import signal
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai import OpenAI
from PIL import Image

from tests.helpers.process import PARENT, ServerProcess, processes_where, running

TEXT = {"task": "chat", "engine": "transformers-chat", "source": "demo:text-lm", "limits": {"max_output_tokens": 64}}
VLM = {
    "task": "chat",
    "engine": "transformers-chat",
    "source": "demo:vlm",
    "capabilities": {"vision": True, "context_length": 2048},
    "limits": {"max_output_tokens": 32},
}
DEMO = {
    card["id"]: card
    for card in yaml.safe_load(resources.files("mmserve.catalog").joinpath("demo.yaml").read_text())["models"]
}
IMAGE = {k: v for k, v in DEMO["demo-image"].items() if k not in ("id", "deployment")}
EMBED = {k: v for k, v in DEMO["demo-embed"].items() if k not in ("id", "deployment")}
TTS = {k: v for k, v in DEMO["demo-tts"].items() if k not in ("id", "deployment")}
ASR = {k: v for k, v in DEMO["demo-asr"].items() if k not in ("id", "deployment")}
VIDEO = {k: v for k, v in DEMO["demo-video"].items() if k not in ("id", "deployment")}
WORKER = {"mode": "dedicated", "process": True}


def _pair(name: str, card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card in this process and in a worker process."""
    return [
        {**card, "id": f"{name}-here", "deployment": {"mode": "dedicated", "process": False}},
        {**card, "id": f"{name}-worker", "deployment": WORKER},
    ]


CATALOG = {
    "models": [
        *_pair("text", TEXT),
        {**TEXT, "id": "text-unsaid", "deployment": {"mode": "dedicated"}},  # in a worker: the server's setting
        *_pair("vlm", VLM),
        *_pair("image", IMAGE),
        *_pair("embed", EMBED),
        *_pair("tts", TTS),
        *_pair("asr", ASR),
        {**VIDEO, "id": "video-worker", "deployment": {**WORKER, "max_concurrency": 1}},
        {
            **TEXT,
            "id": "slow-worker",
            "options": {"logits_processors": ["tests.helpers.faulty:SlowSteps"]},
            "deployment": WORKER,
        },
        {
            **TEXT,
            "id": "failing-worker",
            "options": {"logits_processors": ["tests.helpers.faulty:FailsMidway"]},
            "deployment": WORKER,
        },
        {**TEXT, "id": "idle-worker", "deployment": {"mode": "serverless", "process": True, "idle_unload_s": 1}},
        {
            **TEXT,
            "id": "missing-worker",
            "source": "/nonexistent/weights",
            "deployment": {"mode": "serverless", "process": True},
        },
    ]
}
WORKERS = [
    c["id"] for c in CATALOG["models"] if c["deployment"].get("process") and c["deployment"]["mode"] == "dedicated"
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("workers")
    config = root / "catalog.yaml"
    config.write_text(yaml.safe_dump(CATALOG))
    (root / "data").mkdir()
    (root / "data" / "models").symlink_to(models_dir, target_is_directory=True)
    env = {
        "MMSERVE_CLUSTER__HEALTH_CHECK_INTERVAL_S": "0.5",
        "MMSERVE_IDLE_CHECK_INTERVAL_S": "0.5",
        "MMSERVE_WORKER_PROCESSES": "true",  # every card in a worker unless it says otherwise (the "-here" twins do)
    }
    proc = ServerProcess(root / "data", config, env=env)
    try:
        yield proc.start(
            wait_for=[c["id"] for c in CATALOG["models"] if c["deployment"]["mode"] == "dedicated"], timeout=600
        )
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)


def _deployment(server: ServerProcess, model: str) -> dict[str, Any]:
    return httpx.get(f"{server.url}/v1/models/{model}", timeout=10).json()["deployment"]


def _worker_pid(server: ServerProcess, model: str) -> int:
    (node,) = _deployment(server, model)["replica_nodes"]
    match = re.fullmatch(r"local:(\d+)", node)
    assert match, node
    return int(match.group(1))


def _metric(server: ServerProcess, name: str, model: str) -> float | None:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(rf'^{name}{{model="{model}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else None


def _chat(client: OpenAI, model: str, **kw: Any) -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello there"}], **kw)


def test_each_worker_runs_in_a_process_of_its_own(server: ServerProcess) -> None:
    assert server.proc is not None
    pids = {model: _worker_pid(server, model) for model in WORKERS}
    assert len(set(pids.values())) == len(WORKERS)
    assert set(pids.values()) <= set(processes_where(PARENT, server.proc.pid))
    for pid in pids.values():
        assert "mmserve.runtime.worker" in Path(f"/proc/{pid}/cmdline").read_text()
    assert _deployment(server, "text-here")["replica_nodes"] == ["local"]
    assert [_deployment(server, m)["runs_in"] for m in ("text-here", "text-worker")] == ["here", "worker"]


@pytest.mark.parametrize(
    "kw", [{"temperature": 0}, {"temperature": 1.0, "seed": 7, "n": 2, "logprobs": True, "top_logprobs": 2}]
)
def test_chat_through_a_worker_equals_in_process(client: OpenAI, kw: dict[str, Any]) -> None:
    here = _chat(client, "text-here", max_tokens=12, **kw)
    there = _chat(client, "text-worker", max_tokens=12, **kw)
    assert [c.message.content for c in there.choices] == [c.message.content for c in here.choices]
    assert [c.finish_reason for c in there.choices] == [c.finish_reason for c in here.choices]
    assert there.usage.model_dump() == here.usage.model_dump()
    if kw.get("logprobs"):
        # the same tokens, the same figures up to float rounding (another process: another summation order)
        theirs, ours = there.choices[0].logprobs.content, here.choices[0].logprobs.content
        assert [t.token for t in theirs] == [t.token for t in ours]
        assert [[p.token for p in t.top_logprobs] for t in theirs] == [[p.token for p in t.top_logprobs] for t in ours]
        assert [t.logprob for t in theirs] == pytest.approx([t.logprob for t in ours], abs=1e-4)
    streamed = _chat(client, "text-worker", max_tokens=12, stream=True, stream_options={"include_usage": True}, **kw)
    chunks = list(streamed)
    texts = {
        i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
        for i in range(kw.get("n", 1))
    }
    assert [texts[i] for i in sorted(texts)] == [c.message.content for c in here.choices]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == here.usage.completion_tokens


def test_an_image_in_a_chat_reaches_the_worker(client: OpenAI) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 40, 90)).save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    content: Any = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]
    messages: Any = [{"role": "user", "content": content}]
    here = client.chat.completions.create(model="vlm-here", messages=messages, max_tokens=8, temperature=0)
    there = client.chat.completions.create(model="vlm-worker", messages=messages, max_tokens=8, temperature=0)
    assert there.choices[0].message.content == here.choices[0].message.content
    assert there.usage.prompt_tokens == here.usage.prompt_tokens > 20  # the image's tokens are in both


def test_images_and_embeddings_through_a_worker_equal_in_process(client: OpenAI) -> None:
    images = [
        client.images.generate(model=m, prompt="a red fox", size="256x256", n=2, quality="low", extra_body={"seed": 3})
        for m in ("image-here", "image-worker")
    ]
    assert [d.b64_json for d in images[1].data] == [d.b64_json for d in images[0].data]
    assert len(images[1].data) == 2 and images[1].data[0].b64_json
    vectors = [client.embeddings.create(model=m, input=["one", "two words"]) for m in ("embed-here", "embed-worker")]
    assert [d.embedding for d in vectors[1].data] == [d.embedding for d in vectors[0].data]
    assert vectors[1].usage.prompt_tokens == vectors[0].usage.prompt_tokens


def test_speech_and_transcription_through_a_worker_equal_in_process(client: OpenAI) -> None:
    said = "the quick brown fox jumps over the lazy dog"
    audio = [
        client.audio.speech.create(model=m, voice="alloy", input=said, response_format="wav").content
        for m in ("tts-here", "tts-worker")
    ]
    assert audio[1] == audio[0] and len(audio[1]) > 10_000  # streamed from the worker in chunks, then joined
    heard = [
        client.audio.transcriptions.create(model=m, file=("said.wav", audio[0]), response_format="verbose_json")
        for m in ("asr-here", "asr-worker")
    ]
    assert heard[1].text == heard[0].text and heard[1].text.strip()
    assert [s.text for s in heard[1].segments or []] == [s.text for s in heard[0].segments or []]


def test_a_video_job_runs_in_a_worker(server: ServerProcess, client: OpenAI) -> None:
    video = client.videos.create_and_poll(
        model="video-worker", prompt="a fox", seconds="4", size="256x144", poll_interval_ms=200
    )
    assert (video.status, video.progress, video.seconds, video.size) == ("completed", 100, "4", "256x144")
    data = client.videos.download_content(video.id).read()
    assert data[4:8] == b"ftyp" and len(data) > 1000  # an MP4 the gateway encoded from the worker's frames


def test_an_engine_failure_in_the_worker_fails_that_request_only(client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="failing-worker",
            messages=[{"role": "user", "content": "FAIL now"}],
            max_tokens=12,
            extra_body={"ignore_eos": True},  # no early end: the row reaches the token that fails
        )
    assert "Traceback" not in str(caught.value) and "on purpose" not in str(caught.value)
    fine = _chat(client, "failing-worker", max_tokens=6, extra_body={"ignore_eos": True})
    assert fine.choices[0].finish_reason == "length" and fine.usage.completion_tokens == 6


def test_a_client_leaving_stops_its_row_in_the_worker(server: ServerProcess, client: OpenAI) -> None:
    stream = _chat(client, "slow-worker", max_tokens=64, stream=True)
    seen = 0
    for chunk in stream:
        seen += bool(chunk.choices and chunk.choices[0].delta.content)
        if seen >= 2:
            break
    assert _metric(server, "mmserve_batch_size", "slow-worker") == 1  # still decoding in the worker
    stream.close()  # 64 steps of 20 ms would end in ~1.3 s; the row leaves at once
    deadline = time.monotonic() + 1.0
    while _metric(server, "mmserve_batch_size", "slow-worker") != 0:
        assert time.monotonic() < deadline, "the row kept decoding after its client left"
        time.sleep(0.05)


def test_a_killed_worker_is_replaced(server: ServerProcess, client: OpenAI) -> None:
    before = _chat(client, "text-worker", max_tokens=8, temperature=0).choices[0].message.content
    pid = _worker_pid(server, "text-worker")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while running(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # the next request starts a new worker (or the health check did already): answered, the same
    after = _chat(client, "text-worker", max_tokens=8, temperature=0).choices[0].message.content
    assert after == before
    assert _worker_pid(server, "text-worker") != pid
    assert _deployment(server, "text-worker")["replica_restarts"] >= 1


def test_a_worker_killed_mid_stream_fails_that_stream_and_recovers(server: ServerProcess, client: OpenAI) -> None:
    pid = _worker_pid(server, "slow-worker")
    stream = _chat(client, "slow-worker", max_tokens=64, stream=True, temperature=1.0)  # not reproducible
    got = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            got.append(chunk)
            if len(got) == 3:
                os.kill(pid, signal.SIGKILL)
    assert "lost" in str(caught.value)
    again = _chat(client, "slow-worker", max_tokens=4, temperature=0)
    assert again.usage.completion_tokens == 4
    assert _worker_pid(server, "slow-worker") != pid


def test_the_server_setting_puts_every_card_in_a_worker_unless_it_says_otherwise(
    server: ServerProcess, client: OpenAI
) -> None:
    """This module's server runs with MMSERVE_WORKER_PROCESSES=true: "text-unsaid" says nothing about where it
    runs, "text-here" says ``process: false``."""
    assert server.proc is not None
    assert _worker_pid(server, "text-unsaid") in processes_where(PARENT, server.proc.pid)
    assert [_deployment(server, m)["runs_in"] for m in ("text-unsaid", "text-here")] == ["worker", "here"]
    assert _deployment(server, "text-here")["replica_nodes"] == ["local"]
    answers = [
        _chat(client, m, max_tokens=6, temperature=0).choices[0].message.content for m in ("text-unsaid", "text-here")
    ]
    assert answers[0] == answers[1]


def test_weights_that_are_not_here_fail_without_a_worker(server: ServerProcess, client: OpenAI) -> None:
    assert server.proc is not None
    before = set(processes_where(PARENT, server.proc.pid))
    for _ in range(3):
        with pytest.raises(openai.APIStatusError) as caught:
            _chat(client, "missing-worker", max_tokens=2)
        assert caught.value.status_code == 503 and "weights are not on this server" in str(caught.value)
    assert set(processes_where(PARENT, server.proc.pid)) == before  # no worker was started for it
    # (and none that ended at once: a worker would have logged the missing source)
    assert not [line for line in server.log.read_text().splitlines() if "[worker" in line and "nonexistent" in line]


def test_an_idle_serverless_worker_ends(server: ServerProcess, client: OpenAI) -> None:
    assert _chat(client, "idle-worker", max_tokens=2).usage.completion_tokens == 2
    pid = _worker_pid(server, "idle-worker")
    deadline = time.monotonic() + 15
    while _deployment(server, "idle-worker")["replica_nodes"]:
        assert time.monotonic() < deadline, "not unloaded"
        time.sleep(0.2)
    _ends(pid, "its worker process still runs")


def _one_worker(tmp_path: Path, models_dir: Path) -> ServerProcess:
    """A server (not started) whose only card, "w", runs in a worker."""
    config = tmp_path / "catalog.yaml"
    config.write_text(yaml.safe_dump({"models": [{**TEXT, "id": "w", "deployment": WORKER}]}))
    (tmp_path / "data").mkdir(exist_ok=True)
    if not (tmp_path / "data" / "models").exists():
        (tmp_path / "data" / "models").symlink_to(models_dir, target_is_directory=True)
    return ServerProcess(tmp_path / "data", config)


def _ends(pid: int, why: str) -> None:
    deadline = time.monotonic() + 15
    while running(pid):
        assert time.monotonic() < deadline, why
        time.sleep(0.1)


def test_no_worker_outlives_its_gateway(tmp_path: Path, models_dir: Path) -> None:
    for stop in ("terminate", "kill9"):
        proc = _one_worker(tmp_path, models_dir).start(wait_for=["w"], timeout=300)
        pid = _worker_pid(proc, "w")
        if stop == "terminate":  # torch computes in the worker only: the server never loaded it
            assert proc.proc is not None
            assert "libtorch" in Path(f"/proc/{pid}/maps").read_text()
            assert "libtorch" not in Path(f"/proc/{proc.proc.pid}/maps").read_text()
        if stop == "kill9":
            proc.kill9()  # no shutdown hook: the worker sees its socket close
        else:
            proc.stop()
        _ends(pid, f"the worker outlived its gateway ({stop})")
        # it stopped on its own, not killed by its server
        assert f"[worker {pid}]: model 'w': the server closed its socket; stopping" in proc.log.read_text()


def test_ctrl_c_stops_the_server_and_its_workers_quietly(tmp_path: Path, models_dir: Path) -> None:
    """A terminal's Ctrl-C signals the whole process group: the worker leaves the stop to its server."""
    server = _one_worker(tmp_path, models_dir)
    server.env.update(MMSERVE_LOG_LEVEL="debug", COLUMNS="400")  # rich wraps its lines at 80 columns otherwise
    server.launch_options = {"start_new_session": True}  # its own group, as a shell gives a foreground job
    server.start(wait_for=["w"], timeout=300)
    assert server.proc is not None
    pid = _worker_pid(server, "w")
    os.killpg(server.proc.pid, signal.SIGINT)
    server.proc.wait(timeout=30)
    _ends(pid, "the worker outlived its server")
    log = server.log.read_text()
    assert "KeyboardInterrupt" not in log and "Traceback" not in log, log[-2000:]
    # both exit without a last walk of their heaps (mmserve.heap.ending): the server's shutdown, the worker's unload
    ending = "the process exits next: its unloads leave the heap to the exit"
    assert f"mmserve.heap: {ending}" in log and f"mmserve.heap [worker {pid}]: {ending}" in log, log[-3000:]


def test_a_stopped_worker_exits_by_itself_and_is_reaped(tmp_path: Path, models_dir: Path) -> None:
    """stop() closes the socket and waits: the worker unloads and exits 0, it is not killed."""
    from mmserve.cards import ModelCard
    from mmserve.runtime.process import Worker

    card = ModelCard.model_validate({**TEXT, "id": "w", "deployment": WORKER})
    setup = {
        "card": card.model_dump(mode="json"),
        "base_dir": str(tmp_path),
        "models_dir": str(models_dir),
        "device": "cpu",
        "threads": 1,
    }

    async def main() -> int | None:
        worker = Worker(setup)
        await worker.start()
        await worker.stop()
        assert worker.proc is not None
        return worker.proc.returncode

    assert asyncio.run(main()) == 0
