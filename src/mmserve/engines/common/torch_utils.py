"""Device/dtype choice and memory release shared by the torch-based engines."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmserve import heap


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, without importing torch (seconds) on a Linux host with no GPU driver.

    Deployments size their batches from the device when the server is created, before it
    listens: importing torch there delayed ``/health`` by its whole import time. No NVIDIA
    driver (``/proc/driver/nvidia``, ``/dev/nvidia*``) nor ROCm device (``/dev/kfd``, which
    torch also reports as CUDA) means no CUDA device, whatever torch would say.
    """
    if "torch" not in sys.modules and sys.platform == "linux" and not _gpu_driver():
        return False
    import torch

    return bool(torch.cuda.is_available())


def _gpu_driver() -> bool:
    dev = Path("/dev")
    return Path("/proc/driver/nvidia").exists() or (dev / "kfd").exists() or any(dev.glob("nvidia*"))


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(name: str, device: str) -> Any:
    """``auto`` is float32 on CPU and bfloat16 (or float16 where bf16 is missing) on GPU."""
    import torch

    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def set_intra_op_threads(threads: int) -> None:
    """torch's intra-op thread count (process-wide), when torch is installed."""
    try:
        import torch
    except ImportError:  # no torch engine can load either: nothing to size
        return
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def release_memory() -> None:
    """After an unload dropped the model: collect it (frozen cycles included, see mmserve.heap), then free
    the accelerator's cached blocks."""
    heap.release()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def module_bytes(module: Any) -> int:
    return int(
        sum(p.numel() * p.element_size() for p in module.parameters())
        + sum(b.numel() * b.element_size() for b in module.buffers())
    )


def from_pretrained(cls: Any, source: Any, *, device: str, dtype: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(source)`` in the resolved dtype, moved to ``device``, in eval mode."""
    model = cls.from_pretrained(source, dtype=resolve_dtype(dtype, device), **kwargs)
    return model.to(device).eval()


def loop_sender(loop: Any, queue: Any) -> Callable[[Any], None]:
    """A function a worker thread calls to hand an item to an asyncio queue on ``loop``."""

    def send(item: Any) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, item)

    return send
