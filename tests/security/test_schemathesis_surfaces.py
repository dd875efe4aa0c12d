"""Property-based fuzzing of /v1/completions, /v1/embeddings and /v1/responses: no request gets a 5xx,
and every response passes every schemathesis check (``--checks all``: the schema is truthful).

Same approach as ``test_schemathesis.py`` (the app's own OpenAPI schema, valid and invalid
requests, deterministic by default) against the live security server (the tiny VLM and a
tiny CLIP-style embedding model; a fake DNS keeps every generated URL on loopback). Half the
generated bodies are steered to a real model with small token counts so that those which
pass validation really run. ``MMSERVE_FUZZ_EXAMPLES=600 MMSERVE_FUZZ_RANDOM=1`` makes a
longer, random local run.
"""

from __future__ import annotations

import json
import os

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.security.conformance import conformance_failures, send
from tests.security.conftest import SecurityServer

ENDPOINTS = r"^/v1/(completions|embeddings|responses)"
EXAMPLES = int(os.environ.get("MMSERVE_FUZZ_EXAMPLES", "150"))
_SMALL = {"max_tokens": 3, "max_output_tokens": 3, "n": 2}
_MODEL = {"/v1/completions": "demo-vlm", "/v1/responses": "demo-vlm", "/v1/embeddings": "demo-embed"}
# Fields mmserve refuses by design (a 400 naming them): dropped from steered bodies so that those run.
_REFUSED = ("logprobs", "suffix", "logit_bias", "best_of", "background", "conversation", "prompt", "truncation")


def _steer(path: str, body: dict) -> None:
    body["model"] = _MODEL[path]
    for key, cap in _SMALL.items():
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            body[key] = cap
    if path == "/v1/completions":
        body.setdefault("max_tokens", 3)
        if not isinstance(body.get("prompt"), str):
            body["prompt"] = "Hello"
    for key in _REFUSED:
        if path != "/v1/completions" or key != "prompt":
            body.pop(key, None)
    if path == "/v1/responses":
        body.pop("previous_response_id", None)  # a fuzzed id names no stored response: a 404 (the unsteered half)
        if not body.get("input"):
            body["input"] = "Hello"
    if path == "/v1/embeddings":  # the unsteered half fuzzes input's shapes
        body["input"] = ["Hello", "world"]
        if not isinstance(body.get("dimensions"), int) or not 1 <= body["dimensions"] <= 32:
            body.pop("dimensions", None)


def test_fuzzed_requests_never_get_a_server_error(security_server: SecurityServer) -> None:
    schema = schemathesis.openapi.from_dict(security_server.live.app.openapi()).include(path_regex=ENDPOINTS)
    cases = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    seen: dict[tuple[str, int], int] = {}
    failures: list[str] = []

    positives: dict[str, int] = {}  # per surface: every other positive body is steered (a drawn boolean
    # could leave one surface without any steered case, so without a single request that reaches its model)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not os.environ.get("MMSERVE_FUZZ_RANDOM"),
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def check(case: schemathesis.Case) -> None:
        # negative cases are meant to be refused: steering could repair what was broken on purpose
        positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
        steerable = positive and case.path in _MODEL and case.method == "POST" and isinstance(case.body, dict)
        steered = False
        if steerable:
            positives[case.path] = positives.get(case.path, 0) + 1
            steered = positives[case.path] % 2 == 1
        if steered:
            _steer(case.path, case.body)
        resp = send(case, security_server.url)
        failures.extend(conformance_failures(case, resp, steered=steered))
        key = (case.path, resp.status_code)
        seen[key] = seen.get(key, 0) + 1
        assert resp.status_code < 500, f"{case.method} {case.path} {case.body!r:.2000} -> {resp.text[:2000]}"
        if resp.status_code >= 400:
            err = json.loads(resp.text)["error"]  # every error is the OpenAI envelope
            assert set(err) == {"message", "type", "param", "code"}
            assert "Traceback" not in err["message"]

    check()
    assert not failures, "\n".join(sorted(set(failures)))
    for path in _MODEL:  # each surface answered real requests and refused bad ones
        assert seen.get((path, 200), 0) > 0, sorted(seen.items())
        assert sum(n for (p, s), n in seen.items() if p == path and 400 <= s < 500) > 0, seen
    assert security_server.live.health()["status"] == "ok"
