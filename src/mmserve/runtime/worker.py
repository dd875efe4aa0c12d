"""A replica's worker process: one card's engine, served to the gateway over a socket.

Started by :mod:`mmserve.runtime.process` as ``python -m mmserve.runtime.worker FD`` with its end
of a Unix socket pair. The first message is the set-up (the card, where its source lives, the
device, torch's threads); the worker loads the engine in an :class:`~mmserve.runtime.actor.EngineActor`
(the object a Ray actor holds on a cluster: the same task methods, batched the same way) and
answers ``("ready", info)``, or ``("failed", error)``. Then each ``("call", id, method, args)``
runs as a task: a streaming method sends ``("batch", id, items, ended)`` as its items come, any
other ``("result", id, value)``; an error is ``("error", id, MMServeError | None)`` (None: the
engine failed, the cause is in this process's log). ``("cancel", id)`` cancels that call's task,
which stops the engine at its next step, as a client leaving does in-process.

The gateway's end closing (it stopped, or was killed) ends the worker: its calls are cancelled
and it exits, so no worker outlives its gateway for longer than a load it was in the middle of.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import signal
import sys
from collections.abc import AsyncGenerator
from typing import Any, cast

from mmserve import heap
from mmserve.errors import MMServeError
from mmserve.runtime import wire
from mmserve.runtime.actor import EngineActor

log = logging.getLogger("mmserve.worker")


class WorkerActor(EngineActor):
    """The engine actor of a worker process: it runs on this machine, not on a Ray node.

    Its streams send what is ready, without a window: a message on the socket costs tens of
    microseconds, not a Ray report's milliseconds, and a window held the first token back (a
    stream's first item, the prompt's token count, came a step before it: measured +1.3 ms of
    time to first token at concurrency 1 with the 2 ms window). Items that come while the loop
    is busy still go together.
    """

    coalesce_s = 0.0

    def node_id(self) -> str:
        return f"local:{os.getpid()}"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    # Ctrl-C in a terminal signals the whole foreground group: the server handles it and closes the
    # socket, which ends this worker. Here it would race that: asyncio.run cancels the serving task
    # and raises KeyboardInterrupt (a traceback) unless the socket's end came first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    heap.pause()  # no full collections while the worker imports and loads; the load then freezes its heap
    asyncio.run(_serve(int(args[0])))


async def _serve(fd: int) -> None:
    reader, writer = await wire.open_socket(fd)
    setup: dict[str, Any] = await wire.receive(reader)
    level = setup.get("log_level", "INFO").upper()
    logging.basicConfig(level=level, format=f"%(name)s [worker {os.getpid()}]: %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    threads = setup.get("threads")
    if threads:  # on the loop's thread, as the runtime does: OpenMP keeps a count per thread (runtime.py)
        from mmserve.engines.common.torch_utils import set_intra_op_threads

        set_intra_op_threads(int(threads))
    try:
        actor = await asyncio.to_thread(_load, setup)
    except MMServeError as e:
        wire.send(writer, ("failed", e))
        await writer.drain()
        return
    except Exception as e:
        log.exception("loading model '%s' failed", setup["card"].get("id"))
        wire.send(writer, ("failed", f"{type(e).__name__}: {e}"))
        await writer.drain()
        return
    wire.send(writer, ("ready", actor.info()))
    outbox = wire.Outbox(writer)
    calls: dict[int, asyncio.Task[None]] = {}
    try:
        while True:
            try:
                message = await wire.receive(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                log.info("model '%s': the server closed its socket; stopping", actor.card.id)
                break  # the gateway stopped, or is gone
            if message[0] == "call":
                _, cid, method, args = message
                calls[cid] = asyncio.ensure_future(_run(outbox, actor, cid, method, args))
                calls[cid].add_done_callback(functools.partial(_forget, calls, cid))
            elif message[0] == "cancel" and (running := calls.get(message[1])) is not None:
                running.cancel()
    finally:
        for task in list(calls.values()):
            task.cancel()
        await asyncio.gather(*calls.values(), return_exceptions=True)
        heap.ending()  # this process exits next: the unload need not collect its heap
        with contextlib.suppress(Exception):
            await asyncio.to_thread(actor.engine.unload)


def _forget(calls: dict[int, asyncio.Task[None]], cid: int, _: object) -> None:
    calls.pop(cid, None)


def _load(setup: dict[str, Any]) -> WorkerActor:
    with heap.loading():
        return WorkerActor(setup["card"], setup["base_dir"], setup["models_dir"], setup["device"])


async def _run(outbox: wire.Outbox, actor: WorkerActor, cid: int, method: str, args: tuple[Any, ...]) -> None:
    try:
        result: Any = getattr(actor, method)(*args)
        if inspect.isasyncgen(result):
            batches = cast(AsyncGenerator[tuple[list[Any], bool], None], result)
            async with contextlib.aclosing(batches):
                async for items, ended in batches:
                    _send(outbox, ("batch", cid, items, ended))
            return
        if inspect.isawaitable(result):
            result = await result
        _send(outbox, ("result", cid, result))
    except asyncio.CancelledError:
        pass  # the gateway cancelled it: it expects nothing more
    except MMServeError as e:  # raised on purpose (a bad voice, an oversized prompt): the client's answer
        _send(outbox, ("error", cid, e))
    except Exception:
        log.exception("model '%s' failed in %s", actor.card.id, method)
        _send(outbox, ("error", cid, None))


def _send(outbox: wire.Outbox, message: Any) -> None:
    try:
        frame = wire.frame(message)
    except Exception:  # something in it does not pickle: the call fails, the worker goes on
        log.exception("could not send the answer of call %s", message[1])
        frame = wire.frame(("error", message[1], None))
    outbox.write(frame)


if __name__ == "__main__":
    main()
