"""A client leaving aborts the vLLM request; a killed vLLM server gives a clear error, is restarted, and serves again.

These run after test_chat.py (the kill restarts the shared server, which takes a while).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI, Stream

from tests.e2e.chat.vllm.conftest import ADMIN, MAX_OUTPUT
from tests.helpers.process import GROUP, ServerProcess, processes_where
from tests.helpers.vllm import SETUP_TIMEOUT_S

pytestmark = pytest.mark.timeout(SETUP_TIMEOUT_S)

HELLO = [{"role": "user", "content": "Hello"}]
LONG = {"max_tokens": MAX_OUTPUT, "extra_body": {"ignore_eos": True}, "reasoning_effort": "none"}


def _running(server: ServerProcess) -> float:
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30).text
    found = re.search(r'mmserve_engine_running_requests\{model="tiny-vllm",replica="0"\} (\S+)', text)
    assert found, "the replica reports no running count"
    return float(found.group(1))


def _vllm_api_server() -> int:
    """The pid of the vLLM API server mmserve started for tiny-vllm."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"vllm.entrypoints.openai.api_server" in argv and b"tiny-vllm" in argv:
            return int(entry.name)
    raise AssertionError("no vLLM API server for tiny-vllm is running")


def _group(pgid: int) -> list[int]:
    return processes_where(GROUP, pgid)


def _generated() -> float:
    """The tokens vLLM has generated so far, read on its own socket."""
    argv = Path(f"/proc/{_vllm_api_server()}/cmdline").read_bytes().decode().split("\0")
    transport = httpx.HTTPTransport(uds=argv[argv.index("--uds") + 1])
    with httpx.Client(transport=transport, base_url="http://vllm", timeout=30) as c:
        text = c.get("/metrics").text
    return sum(float(v) for v in re.findall(r"^vllm:generation_tokens_total\{[^}]*\} (\S+)", text, re.M))


def _engine_core_shares_the_workers_cores(api_server: int) -> bool:
    """On this CPU host, vLLM binds its Worker to some cores; mmserve binds the EngineCore (every thread) to them."""
    named = {}
    for pid in _group(api_server):
        with contextlib.suppress(OSError):
            named[Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]] = pid
    worker = os.sched_getaffinity(named[b"VLLM::Worker"])
    if worker == os.sched_getaffinity(0):
        return True  # vLLM left its Worker unbound (one core): nothing to share
    core = named[b"VLLM::EngineCore"]
    return all(os.sched_getaffinity(int(t)) == worker for t in os.listdir(f"/proc/{core}/task"))


def _streaming_inside_vllm(client: OpenAI, vllm_server: ServerProcess, chunks: int) -> Stream[Any] | None:
    """A long streamed answer, its first ``chunks`` chunks read, that vLLM is still generating.

    vLLM generates whether or not the client reads, and on 2 busy cores its CPU build's API
    server can be starved by the engine's busy-polling processes until the answer is done (seen
    on an idle 2-core machine: every chunk of a 3 s answer, the role's included, arrived at its
    end). mmserve now binds the EngineCore to the Worker's cores, which ended that here (see
    engines/vllm/cpu_affinity.py); where it still happens, such an attempt proves nothing and is
    made again; None when no attempt streamed.
    """
    for _ in range(4):
        stream = client.chat.completions.create(model="tiny-vllm", messages=HELLO, stream=True, **LONG)  # type: ignore[call-overload]
        for _ in range(chunks):
            next(stream)
        if _running(vllm_server) >= 1:
            return stream
        stream.close()
    return None


def test_client_leaving_mid_stream_aborts_the_vllm_request(client: OpenAI, vllm_server: ServerProcess) -> None:
    assert _engine_core_shares_the_workers_cores(_vllm_api_server())  # what lets its API server stream
    generated = _generated()
    stream = _streaming_inside_vllm(client, vllm_server, 4)
    if stream is None:
        pytest.skip("vLLM's API server sent nothing before its answers ended on this machine: no abort to observe")
    stream.close()
    deadline = time.monotonic() + 10
    while _running(vllm_server) != 0:
        assert time.monotonic() < deadline, "vLLM kept generating for a client that left"
        time.sleep(0.1)
    assert _generated() - generated < MAX_OUTPUT  # stopped by mmserve, not finished


def test_killed_vllm_server_errors_clearly_falls_back_restarts_and_serves(
    client: OpenAI, vllm_server: ServerProcess
) -> None:
    pid = _vllm_api_server()
    engine_processes = _group(pid)
    assert len(engine_processes) >= 3  # API server, EngineCore, Worker (and a resource tracker)
    stream = _streaming_inside_vllm(client, vllm_server, 3)
    os.kill(pid, signal.SIGKILL)
    if stream is not None:  # a request in flight gets a clear error (when vLLM was seen streaming one)
        with pytest.raises(openai.APIError) as failed:
            for _ in stream:
                pass
        assert "vLLM server of 'tiny-vllm'" in str(failed.value.message)
    # the engine processes the killed server orphaned are stopped too
    deadline = time.monotonic() + 30
    while any(p in engine_processes for p in _group(pid)):
        assert time.monotonic() < deadline, f"orphans of the killed vLLM server remain: {_group(pid)}"
        time.sleep(0.2)
    # while it restarts: the card answers 503 at once, and routers send its requests elsewhere
    assert httpx.get(vllm_server.url + "/health").json()["models"]["tiny-vllm"] == "restarting"
    with pytest.raises(openai.InternalServerError) as down:
        client.chat.completions.create(model="tiny-vllm", messages=HELLO, max_tokens=2)
    assert down.value.status_code == 503 and isinstance(down.value.body, dict)
    assert down.value.body["code"] == "model_restarting" and "restarting" in down.value.body["message"]
    routed = client.chat.completions.with_raw_response.create(model="resilient-chat", messages=HELLO, max_tokens=2)
    assert routed.headers["x-mmserve-model"] == "tiny-tf"
    deadline = time.monotonic() + SETUP_TIMEOUT_S - 120
    while httpx.get(vllm_server.url + "/health").json()["models"]["tiny-vllm"] != "loaded":
        assert time.monotonic() < deadline, "the vLLM server was not restarted"
        time.sleep(1)
    assert _vllm_api_server() != pid
    assert _engine_core_shares_the_workers_cores(_vllm_api_server())  # bound again after the restart
    r = client.chat.completions.create(model="tiny-vllm", messages=HELLO, max_tokens=4, reasoning_effort="none")
    assert r.choices[0].message.content is not None and r.usage and r.usage.completion_tokens > 0
