"""A live mmserve over a catalog of tiny video models, shared by the video e2e tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from openai import OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import load_catalog
from mmserve.settings import FetchSettings, JobSettings, Settings
from tests.helpers.server import LiveServer
from tests.helpers.videos import build_broken_wan, video_catalog


@pytest.fixture(scope="session")
def video_server(data_dir: Path) -> Iterator[LiveServer]:
    catalog_file = data_dir / "video-catalog.yaml"
    catalog_file.write_text(yaml.safe_dump(video_catalog(build_broken_wan(data_dir / "broken-wan"))))
    settings = Settings(
        data_dir=data_dir,
        config=catalog_file,
        # PostgreSQL when the developer names a scratch database, else SQLite in the data dir
        database_url=os.environ.get("MMSERVE_TEST_DATABASE_URL") or f"sqlite:///{data_dir / 'video-e2e.db'}",
        fetch=FetchSettings(allow_networks=["127.0.0.1/32"]),
        jobs=JobSettings(progress_interval_s=0.2, poll_after_ms_min=100, poll_after_ms_default=250),
    )
    server = LiveServer(create_app(settings, load_catalog(catalog_file))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def video_url(video_server: LiveServer) -> str:
    return video_server.url


@pytest.fixture
def client(video_url: str) -> OpenAI:
    return OpenAI(base_url=video_url + "/v1", api_key="unused", max_retries=0)
