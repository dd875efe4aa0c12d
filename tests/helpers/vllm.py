"""The vLLM environment the tests run vLLM from: made (and cached) by `mmserve vllm-venv` on first use.

It lives in ``.venv-vllm/`` at the repository root (git-ignored), so it is built once per
checkout (~2-5 minutes, ~500 MB downloaded) and reused by later runs. ``MMSERVE_TEST_VLLM_PYTHON``
points the tests at another environment's python instead.

A session that will run vLLM's tests starts making the environment in a process of its own as
soon as its tests are collected (:func:`make_in_background`), launches their server as soon as the
environment is there (:func:`launch_early`), and runs vLLM's tests last
(tests/e2e/chat/vllm/conftest.py). Making the environment (~150 s, mostly pip on one core) and
vLLM's start (~60 s on one core) then overlap the rest of the suite, which keeps one of two cores
busy on average, instead of adding to a fresh clone's run; an idle vLLM costs ~2% of a core.
Split between worker processes (the whole suite: tests/conftest.py), vLLM's tests go first to one
worker instead, whose fixture makes the environment and starts the server while the other worker runs tests.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from mmserve.engines.vllm.venv import create_vllm_venv, detect_target, is_ready
from tests.helpers.process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-vllm"
LOCK = ROOT / ".venv-vllm.lock"
BACKGROUND_LOG = ROOT / ".venv-vllm.log"
# Generous: the first run builds the environment, and vLLM starts in 30 s to 2+ minutes on a busy 2-core machine.
SETUP_TIMEOUT_S = 1500

_background: subprocess.Popen[bytes] | None = None
_early: threading.Thread | None = None
_early_server: ServerProcess | None = None
_early_error: BaseException | None = None


def vllm_python() -> Path:
    override = os.environ.get("MMSERVE_TEST_VLLM_PYTHON")
    if override:
        return Path(override)
    _wait_for_background()
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs in one checkout build it once
        return create_vllm_venv(VENV, log=lambda line: print(f"[vllm-venv] {line}", flush=True))


def make_in_background() -> None:
    """Start making the environment in another process, when it is missing (its output: BACKGROUND_LOG).

    That process takes the same lock as :func:`vllm_python`, which waits for it and reports its
    failure with the end of its log.
    """
    global _background
    if _background is not None or os.environ.get("MMSERVE_TEST_VLLM_PYTHON") or is_ready(VENV, detect_target()):
        return
    with BACKGROUND_LOG.open("wb") as log:
        _background = subprocess.Popen(
            [sys.executable, "-c", "from tests.helpers.vllm import vllm_python; vllm_python()"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def launch_early(launch: Callable[[Path], ServerProcess]) -> None:
    """On a thread: wait for the environment, then ``launch(python)`` (a server launched, not waited for)."""
    global _early

    def run() -> None:
        global _early_server, _early_error
        try:
            _early_server = launch(vllm_python())
        except BaseException as e:  # raised to the fixture that takes the server
            _early_error = e

    _early = threading.Thread(target=run, name="vllm-early", daemon=True)
    _early.start()


def take_early() -> ServerProcess | None:
    """The server :func:`launch_early` launched (None: none was asked for); its failure is raised here."""
    global _early, _early_server
    if _early is None:
        return None
    _early.join()
    _early = None
    if _early_error is not None:
        raise _early_error
    server, _early_server = _early_server, None
    return server


def stop_background() -> None:
    """At the session's end: a run cut short leaves neither pip (the environment stays unmarked) nor vLLM running."""
    if _background is not None and _background.poll() is None:
        _background.terminate()
        _background.wait(timeout=30)
    if _early is not None:
        _early.join(timeout=60)
    if _early_server is not None:
        _early_server.stop()
        shutil.rmtree(_early_server.data_dir, ignore_errors=True)


def _wait_for_background() -> None:
    global _background
    if _background is None:
        return
    returncode, _background = _background.wait(), None
    if returncode != 0:
        tail = BACKGROUND_LOG.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"making {VENV} failed (exit {returncode}); the end of {BACKGROUND_LOG}:\n{tail}")
