"""The engine registry: what each engine declares agrees with what it imports."""

from __future__ import annotations

import subprocess
import sys

# Run in a fresh interpreter: this test process has long imported torch.
IMPORTS_TORCH = """
import sys
from mmserve.engines.registry import ENGINES, engine_class

classes = {name: engine_class(name) for name in ENGINES}
assert "torch" not in sys.modules, "an engine module imports torch when it is imported"
for name, cls in classes.items():
    if not cls.uses_torch and cls.loads_in_process:
        cls.import_libraries(cls.Options.model_construct())
        if "torch" in sys.modules:
            print(name)
            break
"""


def test_an_engine_whose_libraries_import_torch_says_it_uses_torch() -> None:
    """``uses_torch`` puts an engine's load in line with the other torch loads (``deployment.LOADING``)
    and gives it a share of the intra-op threads. An engine that loads a transformers model without
    it loaded beside a diffusers pipeline: two ``from_pretrained`` at once on two threads, and the
    embedding model's parameters were left on the meta device ("Cannot copy out of meta tensor")."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_TORCH], capture_output=True, text=True, timeout=240, check=True
    )
    assert done.stdout.strip() == "", f"engine {done.stdout.strip()!r} imports torch but does not say uses_torch"
