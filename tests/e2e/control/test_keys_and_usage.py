"""API keys, per-key limits and metered usage through the openai SDK against a live server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from mmserve.api.app import create_app
from mmserve.catalog.loader import parse_catalog
from mmserve.settings import Settings
from tests.helpers.images import data_uri
from tests.helpers.server import LiveServer

CATALOG = """
models:
  - id: paid-vlm
    task: chat
    engine: transformers-chat
    source: "demo:vlm"
    capabilities: {vision: true}
    pricing: {input_per_1m_tokens: 1000, output_per_1m_tokens: 3000}
  - id: paid-text
    task: chat
    engine: transformers-chat
    source: "demo:text-lm"
    pricing: {input_per_1m_tokens: 10, output_per_1m_tokens: 20}
  - id: paid-video
    task: video-generation
    engine: diffusers-video
    source: "demo:video"
    options: {steps: 2, guidance_scale: 1.0}
    capabilities: {sizes: ["64x48"], fps: [8], durations: [0.5]}
    pricing: {per_video_second: 0.5}
"""


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "keys", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("auth-data")
    (data / "models").symlink_to(models_dir, target_is_directory=True)
    settings = Settings(
        data_dir=data, auth=True, admin_key="admin-secret", usage_flush_interval_s=0.05, key_cache_ttl_s=0.2
    )
    server = LiveServer(create_app(settings, parse_catalog(CATALOG, file="c.yaml", base_dir=data))).start()
    yield server.url, data
    server.stop()


def _key(data: Path, *args: str) -> str:
    return str(json.loads(_cli(data, "create", *args).stdout)["key"])


def test_no_key_is_401_and_health_stays_open(env: tuple[str, Path]) -> None:
    url, _ = env
    client = OpenAI(base_url=url + "/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    r = httpx.post(url + "/v1/chat/completions", json={"model": "paid-text", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(url + "/health").status_code == 200


def test_key_limited_to_models_gets_403_elsewhere(env: tuple[str, Path]) -> None:
    url, data = env
    client = OpenAI(
        base_url=url + "/v1", api_key=_key(data, "--name", "text-only", "--models", "paid-text"), max_retries=0
    )
    ok = client.chat.completions.create(model="paid-text", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert ok.model == "paid-text"
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model="paid-vlm", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert "paid-vlm" in str(e.value)


def test_rate_limit_429_with_retry_after(env: tuple[str, Path]) -> None:
    url, data = env
    client = OpenAI(base_url=url + "/v1", api_key=_key(data, "--rpm", "2"), max_retries=0)
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="paid-text", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
        assert int(raw.headers["x-ratelimit-limit-requests"]) == 2
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="paid-text", messages=[{"role": "user", "content": "hi"}], max_tokens=1)
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_token_limit(env: tuple[str, Path]) -> None:
    url, data = env
    client = OpenAI(base_url=url + "/v1", api_key=_key(data, "--tpm", "20"), max_retries=0)
    client.chat.completions.create(
        model="paid-text", messages=[{"role": "user", "content": "hello " * 10}], max_tokens=8
    )  # more than 20 tokens in all
    with pytest.raises(openai.RateLimitError, match="tokens per minute"):
        client.chat.completions.create(model="paid-text", messages=[{"role": "user", "content": "hi"}], max_tokens=1)


def test_usage_totals_and_costs_match_the_requests(env: tuple[str, Path]) -> None:
    url, data = env
    key = _key(data, "--name", "metered")
    client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    expected = {"paid-vlm": [0, 0, 0], "paid-text": [0, 0, 0]}  # requests, in, out
    for model, content in [
        ("paid-vlm", [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": data_uri()}}]),
        ("paid-vlm", "Describe"),
        ("paid-text", "Hello there"),
    ]:
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], max_tokens=5)
        assert r.usage
        e = expected[model]
        e[0] += 1
        e[1] += r.usage.prompt_tokens
        e[2] += r.usage.completion_tokens
    chunks = list(
        client.chat.completions.create(
            model="paid-text",
            messages=[{"role": "user", "content": "s"}],
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    u = chunks[-1].usage
    assert u
    expected["paid-text"][0] += 1
    expected["paid-text"][1] += u.prompt_tokens
    expected["paid-text"][2] += u.completion_tokens
    usage = httpx.get(url + "/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()
    rows = {r["model"]: r for r in usage["data"]}
    assert rows["paid-vlm"]["image_tokens"] == 16  # one image, expanded into 16 tokens, inside input_tokens
    assert rows["paid-text"]["image_tokens"] == 0
    prices = {"paid-vlm": (1000, 3000), "paid-text": (10, 20)}
    for model, (n, tin, tout) in expected.items():
        assert rows[model]["requests"] == n
        assert rows[model]["input_tokens"] == tin and rows[model]["output_tokens"] == tout
        pin, pout = prices[model]
        assert rows[model]["cost"] == pytest.approx((pin * tin + pout * tout) / 1e6)
    assert usage["total"]["cost"] == pytest.approx(sum(r["cost"] for r in rows.values()))
    # another key sees none of it; only an admin may ask for someone else's
    other = _key(data)
    assert httpx.get(url + "/v1/usage", headers={"Authorization": f"Bearer {other}"}).json()["data"] == []
    key_id = usage["key_id"]
    denied = httpx.get(url + f"/v1/usage?key_id={key_id}", headers={"Authorization": f"Bearer {other}"})
    assert denied.status_code == 403
    admin = httpx.get(url + f"/v1/usage?key_id={key_id}", headers={"Authorization": "Bearer admin-secret"}).json()
    assert admin["total"]["cost"] == pytest.approx(usage["total"]["cost"])


def test_revoked_key_is_refused(env: tuple[str, Path]) -> None:
    url, data = env
    created = json.loads(_cli(data, "create", "--name", "temp").stdout)
    client = OpenAI(base_url=url + "/v1", api_key=created["key"], max_retries=0)
    assert client.models.list().data
    listed = _cli(data, "list", "--json").stdout
    assert created["id"] in [k["id"] for k in json.loads(listed)] and created["key"] not in listed
    assert created["id"] in _cli(data, "list").stdout  # the table for people
    _cli(data, "revoke", created["id"])
    time.sleep(0.3)  # the server's key cache lives key_cache_ttl_s
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_one_key_never_sees_another_keys_jobs_and_is_billed_for_its_own(env: tuple[str, Path]) -> None:
    url, data = env
    alice_key, bob_key = _key(data, "--name", "alice"), _key(data, "--name", "bob")
    alice = OpenAI(base_url=url + "/v1", api_key=alice_key, max_retries=0)
    bob = OpenAI(base_url=url + "/v1", api_key=bob_key, max_retries=0)
    video = alice.videos.create_and_poll(
        model="paid-video", prompt="a fox", seconds="0.5", size="64x48", extra_body={"fps": 8}
    )
    assert video.status == "completed"
    assert alice.videos.download_content(video.id).read()[4:8] == b"ftyp"
    with pytest.raises(openai.NotFoundError):
        bob.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        bob.videos.download_content(video.id)
    with pytest.raises(openai.NotFoundError):
        bob.videos.delete(video.id)
    with pytest.raises(openai.NotFoundError):
        bob.videos.remix(video.id, prompt="a wolf")
    assert [v.id for v in bob.videos.list()] == []
    assert [v.id for v in alice.videos.list()] == [video.id]
    time.sleep(0.3)  # usage is written in batches
    rows = httpx.get(url + "/v1/usage", headers={"Authorization": f"Bearer {alice_key}"}).json()["data"]
    billed = {r["model"]: r for r in rows}["paid-video"]
    assert billed["video_seconds"] == pytest.approx(0.5) and billed["cost"] == pytest.approx(0.25)
    assert httpx.get(url + "/v1/usage", headers={"Authorization": f"Bearer {bob_key}"}).json()["data"] == []


@pytest.mark.parametrize("query", ["start=nan", "end=inf", "start=-inf", "start=1e400", "end=NaN", "start=yesterday"])
def test_usage_times_must_be_finite_numbers(env: tuple[str, Path], query: str) -> None:
    url, _ = env
    r = httpx.get(url + f"/v1/usage?{query}", headers={"Authorization": "Bearer admin-secret"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == query.split("=")[0]


def _status_before_the_body(url: str, headers: dict[str, str]) -> int:
    """Send a request's headers announcing a large body, and read the answer without sending the body."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}"
            f"Content-Length: {50_000_000}\r\n\r\n{{".encode()
        )
        s.settimeout(5)
        try:
            status_line = s.recv(4096).split(b"\r\n", 1)[0]
        except TimeoutError:
            return 0  # no answer: the server is waiting for the body
    return int(status_line.split()[1])


def test_keys_and_limits_are_checked_before_the_body_is_read(env: tuple[str, Path]) -> None:
    """No key (or a key past its limit) costs the server no upload, JSON parsing or validation."""
    url, data = env
    assert _status_before_the_body(url, {}) == 401
    assert _status_before_the_body(url, {"Authorization": "Bearer not-a-key"}) == 401
    key = _key(data, "--rpm", "1")
    client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    client.models.list()  # the one request of this minute
    assert _status_before_the_body(url, {"Authorization": f"Bearer {key}"}) == 429


def test_negative_limits_are_refused_by_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "keys", "--data-dir", str(tmp_path), "create", "--rpm", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "negative" in done.stderr


def test_usage_per_hour_and_day_has_bucket_starts_and_key_names(env: tuple[str, Path]) -> None:
    url, data = env
    key = _key(data, "--name", "hourly")
    client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    before = time.time()
    for _ in range(2):
        client.chat.completions.create(model="paid-text", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    auth = {"Authorization": f"Bearer {key}"}
    hourly = httpx.get(url + "/v1/usage", params={"group_by": "hour", "start": before - 7200}, headers=auth).json()
    assert hourly["group_by"] == "hour" and hourly["tz"] == "UTC"
    assert len(hourly["buckets"]) in (3, 4) and all(b % 3600 == 0 for b in hourly["buckets"])
    [row] = hourly["data"]
    assert row["bucket_start"] == int(before // 3600 * 3600) or row["bucket_start"] == hourly["buckets"][-1]
    assert (row["model"], row["requests"], row["key_name"]) == ("paid-text", 2, "hourly")
    assert hourly["total"]["requests"] == 2 and row["cost"] == pytest.approx(hourly["total"]["cost"])
    # period totals carry the key's name too; an admin sees every key's rows, named
    assert httpx.get(url + "/v1/usage", headers=auth).json()["data"][0]["key_name"] == "hourly"
    admin = {"Authorization": "Bearer admin-secret"}
    daily = httpx.get(
        url + "/v1/usage", params={"group_by": "day", "tz": "Asia/Kolkata", "key_id": "all"}, headers=admin
    ).json()
    assert daily["tz"] == "Asia/Kolkata" and len(daily["buckets"]) in (30, 31)
    assert all((b + 5.5 * 3600) % 86400 == 0 for b in daily["buckets"])  # local midnights
    assert "hourly" in {r["key_name"] for r in daily["data"]}
    assert {r["bucket_start"] for r in daily["data"]} <= set(daily["buckets"])


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"group_by": "week"}, "group_by"),
        ({"group_by": "day", "tz": "Mars/Olympus"}, "tz"),
        ({"tz": "UTC"}, "tz"),
        ({"group_by": "hour", "start": 0}, "group_by"),
        ({"start": 100, "end": 50}, "end"),
        ({"start": -1}, "start"),
        ({"end": 1e300}, "end"),
    ],
)
def test_bad_usage_queries_are_400_naming_the_parameter(env: tuple[str, Path], params: dict, param: str) -> None:
    url, _ = env
    r = httpx.get(url + "/v1/usage", params=params, headers={"Authorization": "Bearer admin-secret"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_each_response_carries_its_cost_as_metered(env: tuple[str, Path]) -> None:
    url, data = env
    key = _key(data, "--name", "costs")
    client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="paid-text", messages=[{"role": "user", "content": "Hello there"}], max_tokens=4
    )
    r = raw.parse()
    assert r.usage is not None
    expected = (10 * r.usage.prompt_tokens + 20 * r.usage.completion_tokens) / 1e6
    assert float(raw.headers["x-mmserve-cost"]) == pytest.approx(expected)
    assert "e" not in raw.headers["x-mmserve-cost"]  # a plain decimal
    assert r.usage.model_dump()["cost"] == pytest.approx(expected)
    chunks = list(
        client.chat.completions.create(
            model="paid-vlm",
            messages=[{"role": "user", "content": "Describe"}],
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    u = chunks[-1].usage
    assert u is not None
    streamed = (1000 * u.prompt_tokens + 3000 * u.completion_tokens) / 1e6
    assert u.model_dump()["cost"] == pytest.approx(streamed)
    rows = httpx.get(url + "/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert {row["model"]: row["cost"] for row in rows} == pytest.approx({"paid-text": expected, "paid-vlm": streamed})
    # a refused request costs nothing and says nothing about cost
    refused = httpx.post(
        url + "/v1/chat/completions", json={"model": "paid-text"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert refused.status_code == 400 and "x-mmserve-cost" not in refused.headers


def test_the_owner_gets_signed_links_a_player_can_use_without_a_key(env: tuple[str, Path]) -> None:
    url, data = env
    owner_key = _key(data, "--name", "player")
    owner = OpenAI(base_url=url + "/v1", api_key=owner_key, max_retries=0)
    video = owner.videos.create_and_poll(
        model="paid-video", prompt="a fox", seconds="0.5", size="64x48", extra_body={"fps": 8}
    )
    auth = {"Authorization": f"Bearer {owner_key}"}
    body = httpx.get(f"{url}/v1/videos/{video.id}", headers=auth).json()
    content, thumb = body["content_url"], body["thumbnail_url"]
    assert body["usage"] == {"video_seconds": 0.5, "cost": 0.25}  # 0.5 s at $0.5 a second, as billed
    assert owner_key not in content and "signature=" in content and "expires=" in content
    whole = httpx.get(content)  # no key: the signature is the authorization
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.content == owner.videos.download_content(video.id).read()
    part = httpx.get(content, headers={"Range": "bytes=4-7"})  # players seek with Range
    assert part.status_code == 206 and part.content == b"ftyp"
    image = httpx.get(thumb)
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    assert httpx.get(content.replace("signature=", "signature=0")).status_code == 403
    expires = int(content.split("expires=")[1].split("&")[0])
    assert expires - time.time() <= 3600 + 5  # short-lived: the link TTL, never longer
    # others still see nothing; jobs not completed have no links yet
    other = {"Authorization": f"Bearer {_key(data)}"}
    assert httpx.get(f"{url}/v1/videos/{video.id}", headers=other).status_code == 404
    queued = owner.videos.create(model="paid-video", prompt="a cat", seconds="0.5", size="64x48", extra_body={"fps": 8})
    early = httpx.get(f"{url}/v1/videos/{queued.id}", headers=auth).json()
    assert early["status"] == "completed" or (early["content_url"] is None and early["usage"] is None)
    assert httpx.get(url + "/health").json()["auth"] is True


def test_keys_expire_with_a_401_key_expired(env: tuple[str, Path]) -> None:
    url, data = env
    made = json.loads(_cli(data, "create", "--name", "temp", "--expires-in", "30d").stdout)
    assert made["expires_at"] == pytest.approx(time.time() + 30 * 86400, abs=120)
    client = OpenAI(base_url=url + "/v1", api_key=made["key"], max_retries=0)
    assert client.models.list().data
    short = json.loads(_cli(data, "create", "--name", "short", "--expires-in", "1h").stdout)
    assert OpenAI(base_url=url + "/v1", api_key=short["key"], max_retries=0).models.list().data
    with sqlite3.connect(data / "mmserve.db") as db:  # an hour later
        db.execute("UPDATE api_keys SET expires_at = ? WHERE id = ?", (time.time() - 1, short["id"]))
    time.sleep(0.3)  # the server's key cache (0.2 s here)
    r = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {short['key']}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "key_expired" and "expired" in r.json()["error"]["message"]
    bad = subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "keys", "--data-dir", str(data), "create", "--expires-in", "soon"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "is not a duration" in bad.stderr


def test_stored_responses_belong_to_their_key(env: tuple[str, Path]) -> None:
    url, data = env
    alice = OpenAI(base_url=url + "/v1", api_key=_key(data, "--name", "alice"), max_retries=0)
    bob = OpenAI(base_url=url + "/v1", api_key=_key(data, "--name", "bob"), max_retries=0)
    r = alice.responses.create(model="paid-text", input="hi", max_output_tokens=2)
    assert alice.responses.retrieve(r.id).id == r.id
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.create(model="paid-text", input="and?", previous_response_id=r.id, max_output_tokens=2)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(r.id)
    alice.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(r.id)
