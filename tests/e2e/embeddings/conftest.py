"""A live server with the shipped demo-embed card (CLIP-style), two tiny text encoders and a chat card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.settings import FetchSettings, Settings
from tests.e2e.conftest import DEMO_YAML
from tests.helpers.server import LiveServer

EXTRA_CARDS = [
    {
        "id": "text-embed",
        "task": "embedding",
        "engine": "transformers-embedding",
        "source": "demo:embed-text",
        "options": {"pooling": "mean"},
        "capabilities": {"matryoshka": True},
        "limits": {"max_inputs": 64},
        "pricing": {"input_per_1m_tokens": 0.01},
    },
    {
        "id": "text-embed-cls",
        "task": "embedding",
        "engine": "transformers-embedding",
        "source": "demo:embed-text",
        "options": {"pooling": "cls", "max_length": 24},
        "pricing": {"input_per_1m_tokens": 5.0},
    },
    {
        "id": "tiny-text",
        "task": "chat",
        "engine": "transformers-chat",
        "source": "demo:text-lm",
        "limits": {"max_output_tokens": 8},
    },
]


@pytest.fixture(scope="session")
def embed_server(data_dir: Path) -> Iterator[LiveServer]:
    demo = next(c for c in yaml.safe_load(DEMO_YAML.read_text())["models"] if c["id"] == "demo-embed")
    path = data_dir / "embed-catalog.yaml"
    path.write_text(yaml.safe_dump({"models": [demo, *EXTRA_CARDS]}))
    settings = Settings(data_dir=data_dir, config=path, fetch=FetchSettings(allow_networks=["127.0.0.1/32"]))
    server = LiveServer(create_app(settings, load_catalog(path))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def embed_url(embed_server: LiveServer) -> str:
    return embed_server.url + "/v1"
