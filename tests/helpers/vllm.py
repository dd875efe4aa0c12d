"""The vLLM environment the tests run vLLM from: made (and cached) by `mmserve vllm-venv` on first use.

It lives in ``.venv-vllm/`` at the repository root (git-ignored), so it is built once per
checkout (~2-5 minutes, ~500 MB downloaded) and reused by later runs. ``MMSERVE_TEST_VLLM_PYTHON``
points the tests at another environment's python instead.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mmserve.engines.vllm.venv import create_vllm_venv

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-vllm"
# Generous: the first run builds the environment, and vLLM starts in 30 s to 2+ minutes on a busy 2-core machine.
SETUP_TIMEOUT_S = 1500


def vllm_python() -> Path:
    override = os.environ.get("MMSERVE_TEST_VLLM_PYTHON")
    if override:
        return Path(override)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with (ROOT / ".venv-vllm.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs in one checkout build it once
        return create_vllm_venv(VENV, log=lambda line: print(f"[vllm-venv] {line}", flush=True))
