"""A video job's fallback: the next model of its route, when its own fails before starting the job.

The API keeps the route's other cards that make the very same clip in ``job.params`` (under
``FALLBACK_MODELS``) when a router alias or ``auto`` takes the job. A model that fails before it
starts the job (it does not load, is overloaded, its provider cannot be reached or refuses to
take the job) passes the job to the next of them, as a router does for the other tasks. Once a
model has started it (an engine checkpointed its resume state: a provider accepted the job and
may bill it), its failure is the job's: it is never run a second time elsewhere.
"""

from __future__ import annotations

from typing import Any

from mmserve.errors import EngineError, EngineUnavailableError, OverloadedError

FALLBACK_MODELS = "fallback_models"  # the key of job.params listing the models to try next, in order
ENGINE_STATE = "engine_state"  # the key of job.params where an engine keeps what it needs to resume
FALLBACK_ERRORS = (EngineError, EngineUnavailableError, OverloadedError)  # as the router's


def fall_back(params: dict[str, Any], exc: BaseException, served: set[str]) -> tuple[str, dict[str, Any]] | None:
    """The next model and the job's params for it, or None when the failure is the job's.

    ``served``: the model ids the server still has (a catalog may have changed since submission).
    """
    if not isinstance(exc, FALLBACK_ERRORS) or ENGINE_STATE in params:
        return None
    left = [m for m in params.get(FALLBACK_MODELS) or [] if isinstance(m, str) and m in served]
    if not left:
        return None
    rest = {k: v for k, v in params.items() if k != FALLBACK_MODELS}
    if left[1:]:
        rest[FALLBACK_MODELS] = left[1:]
    return left[0], rest
