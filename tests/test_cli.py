"""The `mmserve` command (cli.py): a setting it cannot use is named with its fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mmserve.settings import ClusterSettings


def _serve(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "serve", "--data-dir", str(tmp_path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_ray_client_address_is_refused_at_start_with_the_addresses_that_work(tmp_path: Path) -> None:
    """Ray Client cannot stream from actors: with ray:// every request would fail, so serve does not start."""
    out = _serve(tmp_path, {"MMSERVE_CLUSTER__ADDRESS": "ray://127.0.0.1:10001"})
    assert out.returncode == 2
    assert "settings error: MMSERVE_CLUSTER__ADDRESS:" in out.stderr
    assert "Ray Client" in out.stderr and "host:6379" in out.stderr and "'auto'" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_a_malformed_setting_is_named_as_the_operator_sets_it(tmp_path: Path) -> None:
    out = _serve(tmp_path, {"MMSERVE_PORT": "eighty", "MMSERVE_CLUSTER__HEALTH_CHECK_INTERVAL_S": "-1"})
    assert out.returncode == 2
    assert "settings error: MMSERVE_PORT:" in out.stderr
    assert "settings error: MMSERVE_CLUSTER__HEALTH_CHECK_INTERVAL_S: Input should be greater than 0" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_gcs_and_auto_addresses_are_taken() -> None:
    assert ClusterSettings(address="10.0.0.5:6379").address == "10.0.0.5:6379"
    assert ClusterSettings(address="auto").address == "auto"
    assert ClusterSettings().address is None
