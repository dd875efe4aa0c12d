"""One real `mmserve serve` with a real vLLM server behind an `engine: vllm` card, shared by this folder's tests.

The vLLM environment is made by `mmserve vllm-venv` when missing (tests/helpers/vllm.py); the
model is mmserve's tiny Qwen3-style tool LM with 32-wide attention heads (vLLM's CPU attention
has no 16). The same weights also back a transformers card, for fallback while vLLM restarts.
Keys are on: every request carries the admin key or a key made with `mmserve keys create`.

In one process these tests run last in a session, and their server is launched as soon as the
session's tests are collected and the vLLM environment is there (tests/helpers/vllm.py): it starts
while the others run. Split between workers (the whole suite, tests/conftest.py), they go first to
one worker, which makes the environment and starts the server while the other runs tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from openai import OpenAI

from mmserve.catalog.builders.toollm import TOOL_CHAT_TEMPLATE
from tests.helpers.process import ServerProcess
from tests.helpers.vllm import SETUP_TIMEOUT_S, launch_early, make_in_background, take_early, vllm_python

ADMIN = "admin-secret"
# Long enough that an answer runs for seconds (250-500 tokens/s here): the resilience tests act mid-answer
# (with 256, vLLM had often finished by the time the client read its fourth chunk).
MAX_OUTPUT = 1024
FORMATS = {"tool_call_format": "hermes", "reasoning_format": "think-tags", "context_length": 2048}
# Qwen3-Thinking style: with thinking on, the template opens the trace itself (the answer starts inside it).
THINKING_TEMPLATE = TOOL_CHAT_TEMPLATE.replace(
    "{%- if enable_thinking is defined and enable_thinking is false %}",
    "{%- if enable_thinking is defined and enable_thinking is true %}{{- '<think>\\n' }}{%- endif %}\n"
    "{%- if enable_thinking is defined and enable_thinking is false %}",
)
assert THINKING_TEMPLATE != TOOL_CHAT_TEMPLATE


def catalog(python: Path, template: Path) -> dict:
    return {
        "models": [
            {
                "id": "tiny-vllm",
                "task": "chat",
                "engine": "vllm",
                "source": "demo:tool-lm-hd32",
                "options": {
                    "python": str(python),
                    "dtype": "float32",
                    "enforce_eager": True,
                    "kv_cache_memory_bytes": "128M",
                    "chat_template": str(template),
                    "health_interval_s": 1.0,
                    "restart_backoff_s": 0.5,
                },
                "capabilities": FORMATS,
                "limits": {"max_output_tokens": MAX_OUTPUT},
                "pricing": {"input_per_1m_tokens": 1.0, "output_per_1m_tokens": 2.0},
                "deployment": {"mode": "dedicated", "max_concurrency": 64},
            },
            {
                "id": "tiny-tf",  # the same weights on the transformers engine
                "task": "chat",
                "engine": "transformers-chat",
                "source": "demo:tool-lm-hd32",
                "capabilities": FORMATS,
                "limits": {"max_output_tokens": 256},
                "pricing": {"input_per_1m_tokens": 5.0, "output_per_1m_tokens": 10.0},
            },
        ],
        "routers": [
            {"id": "resilient-chat", "task": "chat", "policy": "priority", "candidates": ["tiny-vllm", "tiny-tf"]}
        ],
    }


@pytest.hookimpl(trylast=True)  # after -k and -m deselected theirs: nothing is launched for none
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """vLLM's tests go last; its environment is made and its server launched meanwhile."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # split between workers: these go first to one of them (tests/conftest.py), which makes and starts all
    ours = [item for item in items if "vllm_server" in getattr(item, "fixturenames", ())]
    if ours:
        items[:] = [item for item in items if "vllm_server" not in getattr(item, "fixturenames", ())] + ours
        if not config.option.collectonly:
            make_in_background()
            launch_early(launch)


def launch(python: Path) -> ServerProcess:
    """The server of this folder's tests, launched (not waited for), in a data directory of its own."""
    data = Path(tempfile.mkdtemp(prefix="mmserve-test-vllm-"))
    (data / "models").mkdir()
    template = data / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    config = data / "catalog.yaml"
    config.write_text(yaml.safe_dump(catalog(python, template)))
    env = {"MMSERVE_AUTH": "true", "MMSERVE_ADMIN_KEY": ADMIN, "MMSERVE_USAGE_FLUSH_INTERVAL_S": "0.05"}
    return ServerProcess(data, config, env=env).launch()


@pytest.fixture(scope="package")
def vllm_server() -> Iterator[ServerProcess]:
    server = take_early() or launch(vllm_python())
    try:
        yield server.wait_ready(["tiny-vllm"], timeout=SETUP_TIMEOUT_S)
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture
def client(vllm_server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=vllm_server.url + "/v1", api_key=ADMIN, max_retries=0, timeout=300)
