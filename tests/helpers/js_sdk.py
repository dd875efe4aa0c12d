"""The official openai JavaScript SDK (npm ``openai``, pinned in tests/e2e/js_sdk/package.json), for tests on Node.js.

It is installed with ``npm ci`` into that folder's node_modules (gitignored) the first time;
Node.js and npm come from the machine (Debian's nodejs and npm; ``.ci/run`` installs them when
missing).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "e2e" / "js_sdk"


def js_sdk() -> Path:
    """The node_modules folder holding the SDK, installed first if needed."""
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "Node.js and npm are needed (apt-get install nodejs npm)"
    modules = PACKAGE_DIR / "node_modules"
    if not (modules / "openai" / "package.json").exists():
        install = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(install, cwd=PACKAGE_DIR, check=True, timeout=300)
    return modules
