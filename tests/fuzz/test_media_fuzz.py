"""Run the media header fuzz target (atheris) for a bounded time: no crash, no hang, no leak.

``MMSERVE_FUZZ_SECONDS`` (default 20) sets how long; a finding fails the test with the
libFuzzer report and leaves the input that triggered it in the test's temporary folder
(``crash-*``, ``timeout-*``, ``oom-*``), to be turned into a regular test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HERE = Path(__file__).parent
SECONDS = int(os.environ.get("MMSERVE_FUZZ_SECONDS", "20"))


@pytest.mark.slow
def test_media_header_parsing_survives_fuzzing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"  # the run adds inputs here; the committed seeds stay as they are
    shutil.copytree(HERE / "corpus", corpus)
    cmd = [
        sys.executable,
        str(HERE / "media_target.py"),
        f"-max_total_time={SECONDS}",
        "-timeout=10",  # seconds per input: a hang is a finding
        "-rss_limit_mb=3072",
        "-max_len=65536",
        f"-artifact_prefix={tmp_path}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 120, env=env, cwd=HERE.parents[1])
    report = (proc.stdout + proc.stderr)[-6000:]
    findings = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert proc.returncode == 0 and not findings, f"findings: {findings}\n{report}"
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", report)
    assert runs is not None and int(runs.group(1)) > 100, report  # it really ran
