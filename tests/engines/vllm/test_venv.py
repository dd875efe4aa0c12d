"""The placeholder wheels that keep torchvision & co. out of the vLLM environment, and its ready mark."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from mmserve.engines.vllm.venv import MARK, PLACEHOLDERS, VLLM_VERSION, is_ready, write_placeholders


def test_placeholder_wheels_install_nothing_importable(tmp_path: Path) -> None:
    constraints = write_placeholders(tmp_path / "wheels")
    assert constraints.read_text().splitlines() == [f"{n}=={v}" for n, v in PLACEHOLDERS.items()]
    for name, version in PLACEHOLDERS.items():
        wheel = tmp_path / "wheels" / f"{name}-{version}-py3-none-any.whl"
        names = zipfile.ZipFile(wheel).namelist()
        assert all(n.startswith(f"{name}-{version}.dist-info/") for n in names)  # metadata only
    # pip accepts them (a dry run resolves the pinned placeholder from the folder, offline)
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(tmp_path / "wheels")]
    subprocess.run(
        [*pip, "--target", str(target), "-c", str(constraints), "torchvision", "--quiet"],
        check=True,
        timeout=120,
    )
    assert (target / f"torchvision-{PLACEHOLDERS['torchvision']}.dist-info").is_dir()
    assert not (target / "torchvision").exists()


def test_ready_only_with_the_mark_of_this_version_and_target(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").touch()
    assert not is_ready(tmp_path, "cpu")
    (tmp_path / MARK).write_text(f"cpu {VLLM_VERSION}\n")
    assert is_ready(tmp_path, "cpu") and not is_ready(tmp_path, "cuda")
    (tmp_path / MARK).write_text("cpu 0.1.0\n")
    assert not is_ready(tmp_path, "cpu")
