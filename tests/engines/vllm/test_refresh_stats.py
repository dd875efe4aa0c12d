"""A replica's engine statistics come from its vLLM server's /metrics, and never outlive a failed read
(the stand-in server tests/helpers/fake_vllm.py plays vLLM)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from mmserve.cards import ModelCard
from mmserve.engines.vllm.client import VLLMClient
from mmserve.engines.vllm.engine import VLLMChatEngine
from mmserve.engines.vllm.process import ManagedServer, Timing

FAKE = str(Path(__file__).resolve().parents[2] / "helpers" / "fake_vllm.py")
FAST = Timing(startup_timeout_s=30, health_interval_s=0.2, backoff_s=0.1, backoff_max_s=0.5, term_grace_s=1.0)


def test_stats_are_dropped_when_the_servers_metrics_cannot_be_read(tmp_path: Path) -> None:
    sock, broken = tmp_path / "api.sock", tmp_path / "metrics-broken"
    argv = [sys.executable, FAKE, "--uds", str(sock), "--metrics-broken", str(broken)]
    server = ManagedServer("fake", argv, dict(os.environ), sock, tmp_path / "out.log", FAST)
    card = ModelCard.model_validate({"id": "fake", "task": "chat", "engine": "vllm", "source": str(tmp_path)})
    engine = VLLMChatEngine(card, source=tmp_path, device="cpu")
    server.start()
    try:
        engine.server, engine.client = server, VLLMClient(sock, read_timeout_s=10)

        async def read() -> tuple[float, float] | None:
            await engine.refresh_stats()
            stats = engine.stats()
            return None if stats is None else (stats.running, stats.waiting)

        async def main() -> None:
            assert await read() == (3.0, 2.0)
            broken.touch()  # the server answers, but not its figures: the last ones read are not today's
            assert await read() is None
            broken.unlink()
            assert await read() == (3.0, 2.0)
            await engine.aclose()

        asyncio.run(main())
    finally:
        server.stop()
