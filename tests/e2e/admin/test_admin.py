"""The admin API over HTTP against a live server with auth on: /v1/me, keys CRUD, deployment load/unload."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import parse_catalog
from mmserve.settings import Settings
from tests.helpers.server import LiveServer

CATALOG = """
models:
  - id: text-a
    task: chat
    engine: transformers-chat
    source: "demo:text-lm"
    deployment: {mode: serverless}
  - id: text-b
    task: chat
    engine: transformers-chat
    source: "demo:text-lm"
    deployment: {mode: serverless}
"""
ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    data = tmp_path_factory.mktemp("admin-data")
    (data / "models").symlink_to(models_dir, target_is_directory=True)
    settings = Settings(data_dir=data, auth=True, admin_key="admin-secret", key_cache_ttl_s=0.1)
    server = LiveServer(create_app(settings, parse_catalog(CATALOG, file="c.yaml", base_dir=data))).start()
    yield server.url
    server.stop()


def _create(url: str, **body: object) -> dict:
    r = httpx.post(f"{url}/v1/admin/keys", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_me_describes_the_caller(url: str) -> None:
    made = _create(url, name="team-a", models=["text-a"], requests_per_min=30)
    me = httpx.get(f"{url}/v1/me", headers=_bearer(made["key"])).json()
    assert me == {
        "object": "identity",
        "key_id": made["id"],
        "name": "team-a",
        "admin": False,
        "models": ["text-a"],
        "limits": {"requests_per_min": 30, "tokens_per_min": None},
    }
    assert httpx.get(f"{url}/v1/me", headers=ADMIN).json()["admin"] is True
    assert httpx.get(f"{url}/v1/me").status_code == 401


def test_a_key_is_created_listed_with_no_secret_and_works_for_its_models(url: str) -> None:
    made = _create(url, name="scoped", models=["text-b"], tokens_per_min=1000)
    assert made["key"].startswith("mms-") and made["prefix"] == made["key"][:10]
    listed = httpx.get(f"{url}/v1/admin/keys", headers=ADMIN)
    assert made["key"] not in listed.text
    row = next(k for k in listed.json()["data"] if k["id"] == made["id"])
    assert row == {k: v for k, v in made.items() if k != "key"}
    assert set(row) == {
        "id",
        "object",
        "prefix",
        "name",
        "models",
        "requests_per_min",
        "tokens_per_min",
        "admin",
        "created_at",
        "revoked_at",
        "expires_at",
    }
    client = OpenAI(base_url=f"{url}/v1", api_key=made["key"], max_retries=0)
    assert [m.id for m in client.models.list()] == ["text-b"]


def test_a_key_made_with_a_lifetime_expires(url: str) -> None:
    made = _create(url, name="short", expires_in_s=1)
    assert made["expires_at"] == pytest.approx(time.time() + 1, abs=5)
    assert httpx.get(f"{url}/v1/me", headers=_bearer(made["key"])).status_code == 200
    time.sleep(1.3)
    r = httpx.get(f"{url}/v1/me", headers=_bearer(made["key"]))
    assert r.status_code == 401 and r.json()["error"]["code"] == "key_expired"


def test_non_admin_keys_are_refused_everywhere_under_admin(url: str) -> None:
    plain = _bearer(_create(url, name="plain")["key"])
    for method, path in [
        ("GET", "/v1/admin/keys"),
        ("POST", "/v1/admin/keys"),
        ("PATCH", "/v1/admin/keys/key_x"),
        ("DELETE", "/v1/admin/keys/key_x"),
        ("POST", "/v1/admin/deployments/text-a/load"),
        ("POST", "/v1/admin/deployments/text-a/unload"),
    ]:
        r = httpx.request(method, f"{url}{path}", headers=plain, json={} if method in ("POST", "PATCH") else None)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "admin_required"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"models": ["no-such-model"]}, "models[0]"),
        ({"requests_per_min": 0}, "requests_per_min"),
        ({"tokens_per_min": 10**12}, "tokens_per_min"),
        ({"name": "x" * 201}, "name"),
        ({"secret": "mine"}, "secret"),
        ({"admin": "maybe"}, "admin"),
        ({"admin": 1}, "admin"),  # an admin key is asked with true, nothing that passes for it
        ({"admin": "true"}, "admin"),
        ({"admin": 0}, "admin"),
        ({"expires_in_s": 0}, "expires_in_s"),
    ],
)
def test_bad_key_requests_are_4xx_naming_the_field(url: str, body: dict, param: str) -> None:
    r = httpx.post(f"{url}/v1/admin/keys", json=body, headers=ADMIN)
    assert r.status_code in (400, 404), r.text
    err = r.json()["error"]
    assert err["param"] == param and err["message"]


def test_update_changes_limits_and_models_and_revoke_refuses_the_key(url: str) -> None:
    made = _create(url, name="before", requests_per_min=5, models=["text-a"])
    r = httpx.patch(
        f"{url}/v1/admin/keys/{made['id']}",
        json={"name": "after", "requests_per_min": None, "models": None},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["requests_per_min"], r.json()["models"]) == ("after", None, None)
    time.sleep(0.2)  # the key cache
    me = httpx.get(f"{url}/v1/me", headers=_bearer(made["key"])).json()
    assert me["name"] == "after" and me["models"] is None and me["limits"]["requests_per_min"] is None
    # only what is sent changes; a null name clears it
    r = httpx.patch(f"{url}/v1/admin/keys/{made['id']}", json={"name": None}, headers=ADMIN)
    assert r.json()["name"] == "" and r.json()["models"] is None
    assert httpx.patch(f"{url}/v1/admin/keys/{made['id']}", json={"models": ["nope"]}, headers=ADMIN).status_code == 404

    gone = httpx.delete(f"{url}/v1/admin/keys/{made['id']}", headers=ADMIN)
    assert gone.json() == {"id": made["id"], "object": "api_key.revoked", "revoked": True}
    time.sleep(0.2)
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{url}/v1", api_key=made["key"], max_retries=0).models.list()
    ids = [k["id"] for k in httpx.get(f"{url}/v1/admin/keys", headers=ADMIN).json()["data"]]
    assert made["id"] not in ids
    revoked = httpx.get(f"{url}/v1/admin/keys?include_revoked=true", headers=ADMIN).json()["data"]
    assert next(k for k in revoked if k["id"] == made["id"])["revoked_at"] is not None
    for method in ("PATCH", "DELETE"):
        r = httpx.request(
            method, f"{url}/v1/admin/keys/{made['id']}", headers=ADMIN, json={} if method == "PATCH" else None
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "key_not_found"


def test_deployments_load_and_unload(url: str) -> None:
    r = httpx.post(f"{url}/v1/admin/deployments/text-a/load", headers=ADMIN)
    assert r.status_code == 202 and r.json()["id"] == "text-a"
    assert r.json()["deployment"]["state"] in ("loading", "loaded")
    deadline = time.monotonic() + 120
    while httpx.get(f"{url}/health").json()["models"].get("text-a") != "loaded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert httpx.get(f"{url}/health").json()["models"].get("text-b") != "loaded"  # only the one asked for
    r = httpx.post(f"{url}/v1/admin/deployments/text-a/unload", headers=ADMIN)
    assert r.status_code == 200 and r.json()["deployment"]["state"] == "idle"
    assert r.json()["deployment"]["replicas_loaded"] == 0
    missing = httpx.post(f"{url}/v1/admin/deployments/no-such/load", headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "model_id"
