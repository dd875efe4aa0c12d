"""A live mmserve over tiny Qwen3-style models for reasoning, tool calls and structured output."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import yaml
from openai import OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.settings import Settings
from tests.helpers.server import LiveServer

DEMO_CARDS = yaml.safe_load(resources.files("mmserve.catalog").joinpath("demo.yaml").read_text())["models"]
FORMATS = {"reasoning_format": "think-tags", "tool_call_format": "hermes", "context_length": 2048}
FORMATS_CATALOG = {
    "models": [
        {
            # Plays a real reasoning / tool-calling model: see tests/helpers/scripted.py.
            "id": "tool-lm",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:tool-lm",
            "options": {"logits_processors": ["tests.helpers.scripted:ScriptedReplies"]},
            "capabilities": FORMATS,
            "limits": {"max_output_tokens": 256},
        },
        {
            # The same weights unscripted: random output, held to shape only by constrained decoding.
            "id": "tool-lm-random",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:tool-lm",
            "capabilities": FORMATS,
            "limits": {"max_output_tokens": 256},
        },
        {
            "id": "demo-vlm",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:vlm",
            "capabilities": {"vision": True, "context_length": 2048},
            "limits": {"max_output_tokens": 256},
        },
        next(card for card in DEMO_CARDS if card["id"] == "demo-tools"),  # as `mmserve serve` has it
    ]
}


@pytest.fixture(scope="session")
def formats_server(data_dir: Path) -> Iterator[LiveServer]:
    path = data_dir / "formats-catalog.yaml"
    path.write_text(yaml.safe_dump(FORMATS_CATALOG))
    server = LiveServer(create_app(Settings(data_dir=data_dir, config=path), load_catalog(path))).start()
    yield server
    server.stop()


@pytest.fixture
def client(formats_server: LiveServer) -> OpenAI:
    return OpenAI(base_url=formats_server.url + "/v1", api_key="unused", max_retries=0)
