"""Shared fixtures: one data directory of tiny models per session, and a live server over them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# ---------------------------------------------------------------- two worker processes (pytest-xdist)
#
# The suite is mostly one test waiting on one server process: on its own it keeps one core of
# two busy. Run whole (`pytest` with no paths), it is split between two worker processes
# (pytest-xdist); naming tests or folders runs them in this process, as before (``-n 2`` splits
# those too). Each worker starts the session's servers its tests need. Tests go to the workers
# in groups (:func:`group_of`): a module's tests together (its fixtures start once), and the
# tests that share something heavier than a module's fixtures together, so that it is started
# or installed once: one Ray cluster, one vLLM server, the console's browser, one npm install.
_SHARED = {
    "tests/e2e/chat/vllm/": "vllm",  # its package fixture: one vLLM server
    "tests/e2e/cluster/": "ray",  # the session's Ray cluster
    "tests/runtime/test_ray_handle.py": "ray",
    "tests/e2e/console/": "console",  # package fixtures: the browser, the console's server
    "tests/e2e/js_sdk/": "node",  # the npm install of the JavaScript SDK
    "tests/e2e/test_seeds.py": "node",  # its JavaScript examples use the same install
}
# The longest groups first (measured: 40-400 s each), so that no worker is left with a long one at
# the end; the others follow in collection order. vLLM's leads: its worker makes the vLLM
# environment (the first time) and waits for vLLM's start while the other runs tests.
_LONG_FIRST = ("vllm", "ray", "tests/runtime/test_process.py", "node", "console")


def group_of(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return next((group for prefix, group in _SHARED.items() if module.startswith(prefix)), module)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject.toml): two workers for the whole suite, none for a run that names its tests."""
    whole = config.args_source == pytest.Config.ArgsSource.TESTPATHS or config.args == config.getini("testpaths")
    return min(2, os.cpu_count() or 1) if whole else 0


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scheduling by scope, with :func:`group_of`'s groups as the scopes."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the order the groups are handed out in
        rank = {name: i for i, name in enumerate(_LONG_FIRST)}
        items.sort(key=lambda item: rank.get(group_of(item.nodeid), len(rank)))  # stable: else as collected
    _skip_gpu_tests(items)


def _skip_gpu_tests(items: list[pytest.Item]) -> None:
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
