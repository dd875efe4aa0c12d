"""With API keys required, the OpenAPI document says so (a bearer scheme on every route but the
open ones, 401 and 429 documented) and every schemathesis check passes, ``ignored_auth`` too:
each request is also replayed without its key and must get a 401."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from mmserve.api.app import create_app
from mmserve.catalog.catalog import Catalog
from mmserve.settings import Settings
from tests.helpers.server import LiveServer
from tests.security.conformance import conformance_failures, send

ADMIN = "sk-fuzz-admin"
EXAMPLES = int(os.environ.get("MMSERVE_FUZZ_EXAMPLES", "120")) // 2


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("auth-fuzz"), auth=True, admin_key=ADMIN)
    server = LiveServer(create_app(settings, Catalog([], base_dir=Path(".")))).start()
    yield server
    server.stop()


#: the routes that fetch media URLs (422 when a URL cannot be fetched)
FETCHING = ("/v1/chat/completions", "/v1/videos", "/v1/responses", "/v1/embeddings", "/v1/images/edits")


def test_the_schema_declares_the_key_and_its_statuses(auth_server: LiveServer) -> None:
    doc = auth_server.app.openapi()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            opened = path in ("/health", "/ready") or path.startswith("/v1/artifacts/")  # the probes and signed links
            assert ("security" in operation) != opened, path
            assert {"401", "429"} <= set(operation["responses"]) or opened, path
            assert "422" not in operation["responses"] or path in FETCHING, path


def test_fuzzed_requests_with_keys_required_conform(auth_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_dict(auth_server.app.openapi())
    cases = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    failures: list[str] = []
    seen: dict[int, int] = {}

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
        header = case.meta.components.get(ParameterLocation.HEADER) if case.meta is not None else None
        # a case whose headers are broken on purpose (the key left out) goes without one
        headers = {} if header is not None and header.mode.is_negative else {"Authorization": f"Bearer {ADMIN}"}
        resp = send(case, auth_server.url, headers)
        seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
        failures.extend(conformance_failures(case, resp, headers=headers))

    check()
    assert not failures, "\n".join(sorted(set(failures)))
    assert seen.get(200, 0) > 0, seen
