"""Replicas in worker processes on this machine (a card's ``deployment.process: true``).

Why: in one process, the gateway's request handling (HTTP, auth, routing, metering, the SSE
events) and the engines' decode loops share one GIL. Measured on the demo (2 cores, concurrency
16), the server was bound by it: the event loop and the decode thread together held one core's
worth of GIL, and the second core idled. vLLM's server split the same way (an API server process
and an engine-core process) for the same reason. A worker process holds one replica's engine;
the gateway keeps everything else (ingestion, admission, queueing, metering), and its engine
is one of :mod:`mmserve.runtime.remote`'s, so services cannot tell.

The transport is a Unix socket pair with length-prefixed pickles (:mod:`mmserve.runtime.wire`):
one process, one machine, one installation, so nothing heavier (Ray, gRPC) is needed, and each
message costs one write and one read. The worker batches a stream's items as a Ray actor does
(:func:`mmserve.runtime.actor.batched`).

A worker that dies (killed, out of memory) fails the calls it was running with a 503, unless
nothing was sent yet or the call is reproducible (seeded or greedy chat): those go to a new
worker, started at once. The health check (``cluster.health_check_interval_s``) pings each
worker and replaces one that is dead or missed :data:`~mmserve.runtime.remote.MISSED_PINGS` in a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mmserve.cards import ModelCard
from mmserve.engines.base import Engine
from mmserve.errors import EngineError, EngineUnavailableError, MMServeError
from mmserve.runtime import wire
from mmserve.runtime.remote import MAX_RESPAWNS, MISSED_PINGS, REMOTE_CLASSES, lost

log = logging.getLogger("mmserve.runtime")
STOP_TIMEOUT_S = 10.0  # a worker told to stop (its socket closed) is killed after this


class WorkerLost(Exception):
    """The worker process ended while a call was running."""


class Worker:
    """One worker process and its socket; :meth:`start` loads the engine in it."""

    def __init__(self, setup: dict[str, Any]) -> None:
        self.setup = setup
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._calls: dict[int, asyncio.Queue[tuple[Any, ...]]] = {}
        self._ids = itertools.count(1)
        self.alive = False
        self._stopping = False  # stop() closes the socket and gives the worker time to exit

    async def start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mmserve.runtime.worker", str(child.fileno())],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            child.close()
        try:
            reader, self._writer = await asyncio.open_unix_connection(sock=parent, limit=wire.LIMIT)
            wire.send(self._writer, self.setup)
            kind, value = await wire.receive(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await asyncio.to_thread(self.proc.wait)
            raise RuntimeError(f"the worker process ended while loading (exit code {code})") from None
        except asyncio.CancelledError:  # the server is stopping (Runtime.stop): the half-loaded worker goes
            if self._writer is not None:
                self._writer.close()
            else:
                parent.close()
            await self._end()  # killed and reaped (no zombie waits for the Popen's collection)
            raise
        if kind == "failed":
            await self._end()
            if isinstance(value, MMServeError):
                raise value
            raise RuntimeError(value)
        self.info = value
        self.alive = True
        self._reading = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await wire.receive(reader)
                queue = self._calls.get(message[1])
                if queue is not None:
                    queue.put_nowait(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.alive = False
            for queue in self._calls.values():
                queue.put_nowait(("lost",))
            if not self._stopping:  # it died, or its socket broke: it can serve nobody
                await self._end()

    async def messages(self, method: str, *args: Any) -> AsyncIterator[tuple[Any, ...]]:
        """The worker's answers to one call; the call is cancelled there if the caller stops early."""
        if not self.alive or self._writer is None:
            raise WorkerLost()
        cid = next(self._ids)
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._calls[cid] = queue
        done = False
        try:
            wire.send(self._writer, ("call", cid, method, args))
            while True:
                message = await queue.get()
                if message[0] == "lost":
                    raise WorkerLost()
                done = message[0] != "batch" or message[3]
                yield message
                if done:
                    return
        finally:
            del self._calls[cid]
            if not done and self.alive:
                with contextlib.suppress(Exception):  # gone meanwhile: nothing to cancel
                    wire.send(self._writer, ("cancel", cid))

    async def stop(self) -> None:
        """Close the socket (the worker then exits); kill it if it has not within STOP_TIMEOUT_S."""
        self._stopping = True
        self.alive = False
        if self._writer is not None:
            self._writer.close()
        if self.proc is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait), STOP_TIMEOUT_S)
            except TimeoutError:
                await self._end()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)

    async def _end(self) -> None:
        """Kill the process if it still runs, and reap it (no zombie is left behind)."""
        self.kill()
        if self.proc is not None:
            await asyncio.to_thread(self.proc.wait)

    def kill(self) -> None:
        self.alive = False
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


class WorkerHandle:
    """A replica's worker, replaced when it dies: what the remote engines call (as a Ray ReplicaHandle)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.generation = 0
        self.restarts = 0
        self.missed_pings = 0
        self._lock = asyncio.Lock()

    @property
    def info(self) -> dict[str, Any]:
        return self.worker.info

    async def replace(self, seen: int) -> None:
        """A new worker, unless another call already replaced the one that died (generation ``seen``)."""
        async with self._lock:
            if self.generation != seen:
                return
            log.warning("worker process %s of '%s' lost; starting a new one", self.pid, self.worker.setup["card"]["id"])
            self.worker.kill()
            worker = Worker(self.worker.setup)
            try:
                await worker.start()
            except MMServeError:
                raise
            except Exception as e:
                card = self.worker.setup["card"]["id"]
                raise EngineUnavailableError(f"A replica of '{card}' failed to restart.") from e
            self.worker = worker
            self.missed_pings = 0
            self.generation += 1
            self.restarts += 1

    @property
    def pid(self) -> int | None:
        return self.worker.proc.pid if self.worker.proc is not None else None

    async def stream(self, method: str, *args: Any, replayable: bool = False) -> AsyncIterator[Any]:
        """Items of a streaming task method, retried on a new worker if this one dies: while nothing
        was yielded, or past the items already yielded when the call is ``replayable``."""
        attempt, sent = 0, 0
        while True:
            seen, index = self.generation, 0
            try:
                async for message in self.worker.messages(method, *args):
                    if message[0] == "error":
                        raise message[2] or EngineError("The model failed while serving this request.")
                    for item in message[2]:
                        index += 1
                        if index > sent:
                            sent = index
                            yield item
                return
            except WorkerLost:
                if (error := lost(sent, replayable, attempt)) is not None:
                    raise error from None
                attempt += 1
                await self.replace(seen)

    async def call(self, method: str, *args: Any) -> Any:
        for attempt in range(MAX_RESPAWNS + 1):
            seen = self.generation
            try:
                async for message in self.worker.messages(method, *args):
                    if message[0] == "error":
                        raise message[2] or EngineError("The model failed while serving this request.")
                    return message[2]
            except WorkerLost:
                if attempt == MAX_RESPAWNS:
                    raise EngineUnavailableError("The replica was lost; retry the request.") from None
                await self.replace(seen)
        raise AssertionError("unreachable")

    async def check(self, timeout: float) -> bool:
        """Ping the worker; replace it when it died or missed :data:`MISSED_PINGS` in a row. Whether it was replaced."""
        seen = self.generation
        if self.worker.alive:
            try:
                await asyncio.wait_for(self._ping(), timeout)
                self.missed_pings = 0
                return False
            except WorkerLost:
                pass
            except TimeoutError:
                self.missed_pings += 1
                if self.missed_pings < MISSED_PINGS:
                    log.warning("worker process %s missed a ping (%d in a row)", self.pid, self.missed_pings)
                    return False
        if self.generation != seen:
            return False
        await self.replace(seen)
        return True

    async def _ping(self) -> None:
        async for _ in self.worker.messages("ping"):
            return

    async def release(self) -> None:
        await self.worker.stop()

    def kill(self) -> None:
        self.worker.kill()


async def start_worker_replica(
    card: ModelCard, device: str, *, base_dir: Path, models_dir: Path, threads: int | None
) -> Engine:
    """A worker process with the card's engine loaded, wrapped in the task's remote engine."""
    setup = {
        "card": card.model_dump(mode="json"),
        "base_dir": str(base_dir),
        "models_dir": str(models_dir),
        "device": device,
        "threads": threads,
        "log_level": logging.getLevelName(logging.getLogger().level),
    }
    worker = Worker(setup)
    await worker.start()
    log.info("model '%s' runs in worker process %s", card.id, worker.proc.pid if worker.proc else None)
    return REMOTE_CLASSES[card.task](card, WorkerHandle(worker))
