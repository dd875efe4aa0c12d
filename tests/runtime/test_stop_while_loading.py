"""A server told to stop while a model is still loading stops that load instead of waiting for it.

vLLM's server takes tens of seconds to start on a CPU and minutes on a GPU (compilation, CUDA
graphs): a SIGTERM (a rolling update, Ctrl-C) in that time used to wait for the start to finish
and then stop the server it had waited for. The vLLM server here is the stand-in of the
supervisor's tests (tests/helpers/fake_vllm.py), kept unhealthy, so it never finishes starting;
the interpreter the card names runs it in vLLM's place.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from mmserve.cards import ModelCard
from mmserve.catalog.catalog import Catalog
from mmserve.engines.vllm.process import group_pids
from mmserve.metrics import Metrics
from mmserve.runtime.runtime import Runtime
from mmserve.settings import Settings

FAKE = str(Path(__file__).resolve().parents[1] / "helpers" / "fake_vllm.py")


def _stand_in_python(tmp_path: Path) -> tuple[Path, Path]:
    """An "interpreter" that runs the fake server, unhealthy for good, on the socket vLLM was given."""
    sick = tmp_path / "sick"
    sick.touch()
    python = tmp_path / "python"
    python.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "args = sys.argv[1:]\n"
        "sock = args[args.index('--uds') + 1]\n"
        f"os.execv(sys.executable, [sys.executable, {FAKE!r}, '--uds', sock, '--sick', {str(sick)!r}])\n"
    )
    python.chmod(0o755)
    return python, sick


def _fake_servers(tmp_path: Path) -> list[int]:
    """The pids of this test's fake servers (their command line names its sick file)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if FAKE in argv and str(tmp_path) in argv:
                found.append(int(entry.name))
    return found


async def test_a_stop_while_a_vllm_server_starts_stops_that_start(tmp_path: Path, data_dir: Path) -> None:
    python, _ = _stand_in_python(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    card = ModelCard.model_validate(
        {
            "id": "starting",
            "task": "chat",
            "engine": "vllm",
            "source": str(model),
            # the start would wait this long for a healthy server: the stop must not
            "options": {"python": str(python), "startup_timeout_s": 600, "health_interval_s": 0.2},
            "deployment": {"mode": "dedicated"},
        }
    )
    rt = Runtime(Catalog([card], base_dir=data_dir), Settings(data_dir=data_dir), metrics=Metrics())
    await rt.start(background=True)
    for _ in range(400):  # until the fake server runs (its "model" is loading)
        if _fake_servers(tmp_path):
            break
        await asyncio.sleep(0.05)
    (pid,) = _fake_servers(tmp_path)
    dep = rt.deployments["starting"]
    assert dep.state == "loading"

    await asyncio.wait_for(rt.stop(), timeout=120)  # before the fix: until startup_timeout_s

    assert group_pids(pid) == []  # the server and its "EngineCore" child are gone
    assert dep.loaded_replicas == 0 and dep.state != "loaded"
    assert dep.error is not None and "stopping" in dep.error


def _workers() -> set[int]:
    """The live worker processes of this test process (zombies excluded)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace")
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # state ppid ...
            if "mmserve.runtime.worker" in argv and int(fields[1]) == os.getpid() and fields[0] not in "ZX":
                found.add(int(entry.name))
    return found


async def test_a_stop_while_a_worker_process_loads_kills_that_worker(data_dir: Path) -> None:
    card = ModelCard.model_validate(
        {
            "id": "in-a-worker",
            "task": "chat",
            "engine": "transformers-chat",
            "source": "demo:text-lm",
            "deployment": {"mode": "dedicated", "process": True},
        }
    )
    before = _workers()
    rt = Runtime(Catalog([card], base_dir=data_dir), Settings(data_dir=data_dir), metrics=Metrics())
    await rt.start(background=True)
    for _ in range(400):
        if _workers() - before:
            break
        await asyncio.sleep(0.02)
    started = _workers() - before
    assert len(started) == 1
    dep = rt.deployments["in-a-worker"]
    assert dep.state == "loading"  # the worker imports torch and transformers first: seconds

    await asyncio.wait_for(rt.stop(), timeout=120)

    assert dep.load_seconds is None  # before the fix: the stop waited for the load, then unloaded
    (pid,) = started
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped: not even a zombie is left behind
    assert dep.loaded_replicas == 0 and dep.state != "loaded"
