"""Property-based fuzzing of the app's own OpenAPI schema with schemathesis: no request gets a 5xx,
and every response passes every schemathesis check (``--checks all``: the schema is truthful).

Runs against the live security server (real uvicorn, the tiny VLM, a fake DNS so that no
generated URL leaves loopback). Valid and invalid requests are both generated; half the
chat requests are pointed at the real model, with small ``max_tokens``/``n`` so that those
which pass validation generate quickly. Deterministic (``derandomize``) so that CI is
stable; ``MMSERVE_FUZZ_EXAMPLES=600 MMSERVE_FUZZ_RANDOM=1`` makes a longer, random local run.
"""

from __future__ import annotations

import json
import os

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.security.conformance import conformance_failures
from tests.security.conftest import SecurityServer

ENDPOINTS = r"^/(health|v1/models|v1/chat/completions|v1/artifacts|v1/usage|v1/me|v1/admin/keys)"
EXAMPLES = int(os.environ.get("MMSERVE_FUZZ_EXAMPLES", "120"))
_SMALL = {"max_tokens": 3, "max_completion_tokens": 3, "maximum_tokens": 3, "n": 2}


def _steer(body: dict) -> None:
    body["model"] = "demo-vlm"
    for key, cap in _SMALL.items():
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            body[key] = cap


def test_fuzzed_requests_never_get_a_server_error(security_server: SecurityServer) -> None:
    app = security_server.live.app
    schema = schemathesis.openapi.from_dict(app.openapi()).include(path_regex=ENDPOINTS)
    cases = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    seen: dict[int, int] = {}
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not os.environ.get("MMSERVE_FUZZ_RANDOM"),
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, steer=st.booleans())
    def check(case: schemathesis.Case, steer: bool) -> None:
        # negative cases are meant to be refused: steering could repair what was broken on purpose
        positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
        steered = steer and positive and case.path == "/v1/chat/completions" and isinstance(case.body, dict)
        if steered:
            _steer(case.body)
        resp = case.call(base_url=security_server.url, timeout=60)
        seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
        failures.extend(conformance_failures(case, resp, steered=steered))
        assert resp.status_code < 500, f"{case.method} {case.path} {case.body!r:.2000} -> {resp.text[:2000]}"
        if resp.status_code == 200 and case.path == "/v1/usage":  # the period asked for, as numbers
            body = json.loads(resp.text)
            assert isinstance(body["start"], float) and isinstance(body["end"], float), resp.text[:500]
        if resp.status_code >= 400:
            err = json.loads(resp.text)["error"]  # every error is the OpenAI envelope
            assert set(err) == {"message", "type", "param", "code"}
            assert "Traceback" not in err["message"]

    check()
    assert not failures, "\n".join(sorted(set(failures)))
    assert seen.get(200, 0) > 0 and sum(n for s, n in seen.items() if 400 <= s < 500) > 0, seen
    assert security_server.live.health()["status"] == "ok"
