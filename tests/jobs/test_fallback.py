"""Which failures move a video job to its route's next model, and which are the job's own."""

from __future__ import annotations

from mmserve.errors import EngineUnavailableError, InvalidRequestError, OverloadedError, UpstreamError
from mmserve.jobs.fallback import ENGINE_STATE, FALLBACK_MODELS, fall_back

SERVED = {"a", "b", "c"}


def test_a_model_failing_before_it_starts_the_job_passes_it_on_in_order() -> None:
    params = {"negative_prompt": "blur", FALLBACK_MODELS: ["gone", "b", "c"]}
    assert fall_back(params, EngineUnavailableError("no weights"), SERVED) == (
        "b",
        {"negative_prompt": "blur", FALLBACK_MODELS: ["c"]},
    )
    assert fall_back({FALLBACK_MODELS: ["c"]}, OverloadedError("busy"), SERVED) == ("c", {})


def test_the_jobs_own_failures_stay_with_it() -> None:
    params = {FALLBACK_MODELS: ["b"]}
    assert fall_back(params, InvalidRequestError("bad prompt"), SERVED) is None  # the request, not the model
    assert fall_back({**params, ENGINE_STATE: {"upstream_id": "v1"}}, UpstreamError("failed"), SERVED) is None
    assert fall_back({}, UpstreamError("down"), SERVED) is None  # not routed: nothing to fall back to
    assert fall_back({FALLBACK_MODELS: ["gone"]}, UpstreamError("down"), SERVED) is None
