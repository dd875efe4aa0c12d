"""README.md's tools / JSON example, run as written against the demo catalog's `demo-tools` card."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.e2e.test_readme import _snippet
from tests.helpers.server import LiveServer


def test_readme_tools_example(formats_server: LiveServer) -> None:
    code = _snippet("python-tools").replace("http://127.0.0.1:8000", formats_server.url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    lines = dict(line.split(": ", 1) for line in out.stdout.strip().splitlines())
    name, args = lines["call"].split(" ", 1)
    assert name == "get_weather" and ast.literal_eval(args)["city"] in ("Paris", "Rome")
    assert 1 <= ast.literal_eval(lines["json"])["stars"] <= 5
