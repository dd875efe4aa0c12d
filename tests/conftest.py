"""Shared fixtures: one data directory of tiny models per session, and a live server over them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.postgres import PostgresServer
from tests.helpers.ray_cluster import RayCluster
from tests.helpers.redis_server import RedisServer
from tests.helpers.vllm import stop_background

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread: the test machines are shared, and oversubscribed OpenMP threads spin
# (diffusers steps measured 30x slower with 2 threads under load than with 1).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MMSERVE_TORCH_THREADS", "1")  # the servers' runtimes would otherwise set cores / replicas


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose models/ folder is shared by every test of the session."""
    return tmp_path_factory.mktemp("mmserve-data")


@pytest.fixture(scope="session")
def models_dir(data_dir: Path) -> Path:
    path = data_dir / "models"
    path.mkdir(exist_ok=True)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_background()  # vLLM's environment or server, if the session ended before its tests (tests/helpers/vllm.py)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("MMSERVE_"):
            monkeypatch.delenv(key)
    yield


# ---------------------------------------------------------------- servers some tests need (started once)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on loopback (tests take a fresh database each: ``pg_url``)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A head and a second node on loopback (see tests/helpers/ray_cluster.py)."""
    cluster = RayCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()
