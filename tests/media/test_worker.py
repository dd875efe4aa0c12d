"""The decode worker process (media/worker.py) is ready to decode any format when it says READY."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mmserve.media.worker import READY


def test_every_image_plugin_is_loaded_before_ready() -> None:
    # Pillow imports five format plugins on its own and the rest (WEBP's C decoder among them) at
    # the first file it does not recognise: that decode then paid the imports against its time limit.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmserve.media.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == READY
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "PIL/_webp" in maps, "the WEBP decoder is imported at the first WEBP, not at start"
    finally:
        proc.kill()
        proc.wait()
