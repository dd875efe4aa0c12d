"""A live mmserve over a catalog of tiny chat models, shared by the e2e tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.settings import FetchSettings, Settings
from tests.helpers.models import build_short_context_gpt2
from tests.helpers.server import LiveServer

CHAT_CATALOG = {
    "models": [
        {
            "id": "demo-vlm",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:vlm",
            "capabilities": {"vision": True, "max_images": 4, "context_length": 2048},
            "limits": {"max_output_tokens": 64},
            "deployment": {"mode": "dedicated", "max_concurrency": 4},
        },
        {
            "id": "tiny-text",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "capabilities": {"multimodal_enabled": False, "context_length": 2048},
            "limits": {"max_output_tokens": 64},
        },
        {
            # Claims more context than its position table has: fails mid-generation for real.
            "id": "broken-gpt2",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "broken-gpt2",
            "capabilities": {"context_length": 512},
            "limits": {"max_output_tokens": 64},
        },
    ]
}


@pytest.fixture(scope="session")
def chat_catalog_file(data_dir: Path) -> Path:
    build_short_context_gpt2(data_dir / "broken-gpt2", positions=24)
    path = data_dir / "chat-catalog.yaml"
    path.write_text(yaml.safe_dump(CHAT_CATALOG))
    return path


@pytest.fixture(scope="session")
def chat_server(data_dir: Path, chat_catalog_file: Path) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=data_dir,
        config=chat_catalog_file,
        fetch=FetchSettings(allow_networks=["127.0.0.1/32"]),
    )
    server = LiveServer(create_app(settings, load_catalog(chat_catalog_file))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_url(chat_server: LiveServer) -> str:
    return chat_server.url + "/v1"
