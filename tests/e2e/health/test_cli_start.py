"""`mmserve serve` listens before its app is built (api/boot.py); an app that cannot start stops it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.server import free_port


def test_serve_exits_with_an_error_when_the_app_cannot_start(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("models:\n  - {id: tts, task: speech, engine: espeak-ng}\n")
    # nothing listens on port 1: the database cannot be migrated, so the app never starts
    env = {**os.environ, "MMSERVE_DATABASE_URL": "postgresql+asyncpg://mm@127.0.0.1:1/mm", "MMSERVE_PROGRESS": "false"}
    cmd = [sys.executable, "-m", "mmserve.cli", "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)]
    done = subprocess.run(
        [*cmd, "--config", str(catalog)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    log = done.stdout + done.stderr  # mmserve's log (rich) on stdout, uvicorn's on stderr
    assert done.returncode == 1, log[-2000:]
    assert "the server failed to start" in log
    assert "Uvicorn running" in log  # it listened (and answered /health) meanwhile
