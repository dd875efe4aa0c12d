"""The garbage collector and the long-lived heap of a serving process.

Once its models are loaded, a server holds a few million objects that live as long as it does:
torch's, transformers' and diffusers' modules, the models, their tokenizers and processors.
CPython's full (generation 2) collection walks every one of them, holding the GIL: measured on
`mmserve serve` with the demo catalog (2-core machine, ``gc.callbacks``), each took 340-630 ms,
every 8-12 s under chat load at concurrency 16 and sometimes three in a row, the event loop and
the decode loops stopped meanwhile; during start-up eight of them took 1.5 s. vLLM's API server
meets this the same way (``freeze_gc_heap`` in ``vllm/utils/gc_utils.py``): once the models are
loaded, collect once and :func:`gc.freeze` what is left, so that later collections skip it.

Frozen objects still die by reference counting. Only reference cycles among them wait, for
:func:`release`, which a model's unload calls (``engines.common.torch_utils.release_memory``) once
it dropped its references: it collects the whole heap, then freezes again what survived. A stop
unloads every model at once and collects once (:func:`released_once`); a process about to exit
does not collect at all (:func:`ending`).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("mmserve.heap")
_lock = threading.Lock()  # a freeze and a release (two replicas, two threads) do not interleave


def freeze() -> None:
    """Collect, then move every object alive to the permanent generation.

    Collecting first is what keeps today's garbage from being kept for good. (Nothing here asks
    :func:`gc.get_freeze_count`: it walks the frozen objects one by one, 38 ms for 340,000.)
    """
    with _lock:
        gc.collect()
        gc.freeze()


def freeze_imports() -> None:
    """Freeze without collecting: for a heap of imported libraries, before any model is loaded.

    A server's start imports torch, transformers and diffusers (~570,000 objects), then loads its
    models. Frozen first, the libraries are skipped by the collection of :func:`freeze` after the
    loads, which then walks only what the loads made: measured here with the demo catalog's image
    and VLM models, 45 ms instead of 544. The price is the imports' own garbage, kept until a
    :func:`release`: 9,314 objects, 7 MB, none of them a tensor (types, functions and frames made
    while modules were executed). Only where nothing but modules was loaded: a model's garbage may
    hold tensors, and frozen they would stay.
    """
    with _lock:
        gc.freeze()  # a splice of the collector's lists: no walk


def release() -> None:
    """Collect the whole heap, frozen objects included (a model was dropped: its cycles go now);
    then freeze again, if the heap was frozen before.

    Inside :func:`released_once` the collection waits for the block's end; after :func:`ending`
    there is none (the process exits, and its memory goes with it).
    """
    global _pending
    with _lock:
        if _ending:
            return
        if _deferring:
            _pending = True
            return
        _release()


def _release() -> None:
    frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    gc.collect()
    if frozen:
        gc.freeze()


# Each release walks the whole heap: 0.55-0.65 s on the demo server (a few million objects). A
# server stopping with three torch models made three of them in a row (2.0 s from SIGTERM to exit,
# 0.3 s without), where one at the end frees the same.
_deferring = 0  # released_once() blocks running (on any thread)
_pending = False  # a release was asked for in one of them
_ending = False  # by ending(): no release any more


@contextmanager
def released_once() -> Iterator[None]:
    """The releases asked for in the block (several models unloaded together) make one, at its end."""
    global _deferring, _pending
    with _lock:
        _deferring += 1
    try:
        yield
    finally:
        with _lock:
            _deferring -= 1
            if not _deferring and _pending:
                _pending = False
                if not _ending:
                    _release()


def ending() -> None:
    """This process is about to exit (a server shutting down, a worker whose gateway left): its
    unloads collect nothing, since the exit returns all of its memory at once."""
    global _ending
    with _lock:
        _ending = True
    log.debug("the process exits next: its unloads leave the heap to the exit")


_paused = False  # by pause(), until loading() ends


def pause() -> None:
    """No automatic collection from now until :func:`loading` ends: a server's start, where the heap
    only grows (imports, then models) and each full collection walks everything loaded so far."""
    global _paused
    _paused = True
    gc.disable()


@contextmanager
def loading() -> Iterator[None]:
    """No automatic collection during the block (the start-up loads), then one :func:`freeze`; the
    collector is on again after it, unless it was off before (and not by :func:`pause`)."""
    global _paused
    enable = gc.isenabled() or _paused
    gc.disable()
    try:
        yield
    finally:
        _paused = False
        # freeze first: on again before it, the collector would run an automatic young collection at
        # the next allocation, and everything allocated while paused is young: it walked the whole
        # start-up heap (0.45 s on the demo server) right before the freeze's full collection did
        freeze()
        if enable:
            gc.enable()
