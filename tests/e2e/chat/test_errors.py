"""Error paths of chat: each a 4xx OpenAI envelope with a useful message, never a 500."""

from __future__ import annotations

import base64
import json
import logging
import time

import httpx
import openai
import pytest
from openai import OpenAI

from tests.helpers.images import data_uri
from tests.helpers.server import LiveServer


@pytest.fixture
def client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def _post(base_url: str, body: object) -> httpx.Response:
    return httpx.post(f"{base_url}/chat/completions", json=body, timeout=30)


def _error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "Traceback" not in err["message"]
    return err


def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert "gpt-9" in str(e.value) and "/v1/models" in str(e.value)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "demo-vlm", "messages": []}, "messages"),
        ({"model": "demo-vlm"}, "messages"),
        ({"model": "demo-vlm", "messages": [{"role": "user"}]}, "messages[0]"),
        ({"model": "demo-vlm", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "demo-vlm", "messages": "hello"}, "messages"),
        (
            {"model": "demo-vlm", "messages": [{"role": "user", "content": [{"type": "video", "x": 1}]}]},
            "messages[0].content[0]",
        ),
        (
            {"model": "demo-vlm", "messages": [{"role": "user", "content": "x"}], "temperature": 7},
            "temperature",
        ),
        (
            {"model": "demo-vlm", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            "max_tokens",
        ),
        (
            {"model": "demo-vlm", "messages": [{"role": "user", "content": "x"}], "max_tokens": 100000},
            "max_tokens",
        ),
        ({"model": "demo-vlm", "messages": [{"role": "user", "content": "x"}], "n": 50}, "n"),
        (
            {
                "model": "demo-vlm",
                "messages": [{"role": "user", "content": "x"}],
                "stop": ["a", "b", "c", "d", "e"],
            },
            "stop",
        ),
    ],
)
def test_malformed_requests_are_400_with_param(base_url: str, body: object, param: str) -> None:
    err = _error(_post(base_url, body), 400)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert err["message"]


def test_invalid_json_is_400(base_url: str) -> None:
    resp = httpx.post(
        f"{base_url}/chat/completions",
        content=b"{not json",
        timeout=10,
        headers={"content-type": "application/json"},
    )
    assert _error(resp, 400)["code"] == "invalid_json"


def test_image_to_text_only_card_is_400_naming_model_and_flag(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="tiny-text",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": data_uri()}},
                    ],
                }
            ],
        )
    body = e.value.body
    assert isinstance(body, dict)
    assert "tiny-text" in body["message"] and "multimodal_enabled" in body["message"]
    assert body["param"] == "messages[0].content[1].image_url"


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("", 400, "invalid_image_url"),
        ("   ", 400, "invalid_image_url"),
        ("data:text/plain;base64," + base64.b64encode(b"hello").decode(), 400, "invalid_image_url"),
        ("data:image/png;base64,!!!notbase64", 400, "invalid_base64"),
        ("data:image/png;base64,aGVsbG8", 400, "invalid_base64"),  # bad padding
        ("data:image/png,rawbytes", 400, "invalid_data_uri"),
        (
            "data:image/png;base64," + base64.b64encode(b"GIF89a not a png").decode(),
            415,
            "unsupported_media_type",
        ),
        (
            "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n truncated").decode(),
            400,
            "invalid_image",
        ),
        ("ftp://example.com/cat.png", 400, None),
        ("file:///etc/passwd", 400, None),
        ("http://127.0.0.2/cat.png", 422, "url_refused"),
        ("http://169.254.169.254/latest/meta-data/", 422, "url_refused"),
    ],
)
def test_bad_image_urls(base_url: str, url: str, status: int, code: str | None) -> None:
    body = {
        "model": "demo-vlm",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    }
    err = _error(_post(base_url, body), status)
    assert err["param"] == "messages[0].content[1].image_url"
    if code:
        assert err["code"] == code


def test_too_many_images(base_url: str) -> None:
    parts = [{"type": "image_url", "image_url": {"url": data_uri()}} for _ in range(5)]
    body = {"model": "demo-vlm", "messages": [{"role": "user", "content": parts}]}
    err = _error(_post(base_url, body), 400)
    assert err["code"] == "too_many_images" and "at most 4" in err["message"]


def test_empty_model_name(base_url: str) -> None:
    err = _error(_post(base_url, {"model": "", "messages": [{"role": "user", "content": "x"}]}), 400)
    assert err["param"] == "model"


def test_engine_failure_mid_stream_ends_with_error_event(base_url: str, chat_server: LiveServer) -> None:
    body = {
        "model": "broken-gpt2",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 60,
        "temperature": 0,
        "stream": True,
    }
    events = []
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=60) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))
    assert events[-1] == "[DONE]"
    err = json.loads(events[-2])["error"]
    assert err["type"] == "server_error" and "Traceback" not in err["message"]
    assert "index out of range" not in err["message"]  # no library internals
    contents = [json.loads(e) for e in events[:-2]]
    assert any(c["choices"] and c["choices"][0]["delta"].get("content") for c in contents)  # it did stream first
    # the SDK surfaces it as an error, and the server keeps serving
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(**{k: v for k, v in body.items() if k != "stream"}, stream=True):
            pass
    assert chat_server.health()["status"] == "ok"
    ok = client.chat.completions.create(
        model="demo-vlm", messages=[{"role": "user", "content": "hi"}], max_tokens=2, temperature=0
    )
    assert ok.usage and ok.usage.completion_tokens == 2


def test_engine_failure_without_stream_is_generic_500(base_url: str) -> None:
    body = {
        "model": "broken-gpt2",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 60,
        "temperature": 0,
    }  # greedy: deterministic, and it runs past the position table
    err = _error(_post(base_url, body), 500)
    assert err["code"] == "engine_error"
    assert "index" not in err["message"].lower()


def test_context_length_exceeded(base_url: str) -> None:
    body = {"model": "tiny-text", "messages": [{"role": "user", "content": "word " * 3000}], "max_tokens": 4}
    err = _error(_post(base_url, body), 400)
    assert err["code"] == "context_length_exceeded"


def test_unknown_route_and_method(base_url: str) -> None:
    assert _error(httpx.get(f"{base_url}/nope", timeout=10), 404)["type"] == "not_found_error"
    assert httpx.get(f"{base_url}/chat/completions", timeout=10).status_code == 405


@pytest.mark.parametrize("stream", [False, True])
def test_a_failed_choice_stops_the_other_choices(base_url: str, stream: bool) -> None:
    """n: 2 where one choice fails: the answer is a 500 and the other choice stops generating with it."""
    from tests.helpers import faulty

    faulty.steps.clear()
    body = {
        "model": "faulty-choices",
        "messages": [{"role": "user", "content": f"One of two choices fails ({stream})."}],
        "n": 2,
        "max_tokens": 60,
        "temperature": 0,
        "stream": stream,
    }
    assert _error(_post(base_url, body), 500)["code"] == "engine_error"
    answered = time.monotonic()
    time.sleep(40 * faulty.STEP_S)
    # a step already under way may end a little later on a loaded machine (the decode thread
    # descheduled); a choice left running would take ~55 more steps
    late = [t for t in faulty.steps if t > answered + 10 * faulty.STEP_S]
    assert not late, f"{len(late)} generation steps ran after the request had failed"
    entry = httpx.get(f"{base_url}/models/faulty-choices", timeout=10).json()
    assert entry["deployment"]["active"] == 0


def test_client_leaving_a_stream_of_several_choices_is_clean(base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    body = {
        "model": "demo-vlm",
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "n": 2,
        "max_tokens": 64,
        "stream": True,
    }
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=60) as resp:
        assert resp.status_code == 200
        for i, _ in enumerate(resp.iter_lines()):
            if i == 6:
                break  # the client goes away mid-stream
    deadline = time.monotonic() + 10
    while httpx.get(f"{base_url}/models/demo-vlm", timeout=10).json()["deployment"]["active"]:
        assert time.monotonic() < deadline, "the stream's slot was never released"
        time.sleep(0.05)
    time.sleep(0.2)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"messages": [{"role": "user", "content": "bad \ud800 text"}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "\udc00"}]}]},
            "messages[0].content[0].text",
        ),
        ({"stop": ["\ud800"]}, "stop[0]"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "description": "\ud800"}}]},
            "tools[0].function.description",
        ),
    ],
)
def test_lone_surrogates_are_400_naming_the_field(base_url: str, patch: dict, param: str) -> None:
    body = {"model": "demo-vlm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **patch}
    raw = json.dumps(body)  # ensure_ascii: the surrogate travels as the escape "\ud800", as JSON allows
    resp = httpx.post(
        f"{base_url}/chat/completions", content=raw, headers={"content-type": "application/json"}, timeout=30
    )
    err = _error(resp, 400)
    assert err["param"] == param and err["code"] == "invalid_unicode"


@pytest.mark.parametrize(
    ("content", "content_type", "code"),
    [
        (b"", "application/json", "invalid_body"),
        (b"[1, 2]", "application/json", "invalid_body"),
        (b"null", "application/json", "invalid_body"),
        (b'{"model": "demo-vlm"}', "text/plain", "invalid_body"),
        (b'{"model": "\xff"}', "application/json", "invalid_json"),  # not UTF-8
        (b'{"user": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json", "invalid_json"),  # too deep
    ],
)
def test_bodies_that_are_not_a_json_object(base_url: str, content: bytes, content_type: str, code: str) -> None:
    resp = httpx.post(
        f"{base_url}/chat/completions", content=content, headers={"content-type": content_type}, timeout=30
    )
    err = _error(resp, 400)
    assert err["code"] == code and err["param"] is None
    assert "''" not in err["message"] and "There was an error" not in err["message"]


def test_a_client_that_leaves_before_the_answer_stops_its_generation(base_url: str) -> None:
    """Without streaming, a client that gives up frees its slot at once (no answer would reach it)."""
    from tests.helpers import faulty

    def usage() -> dict:
        return httpx.get(f"{base_url}/usage?model=faulty-choices", timeout=10).json()["total"]

    # loaded first (a serverless card): a cold start outlasts the 0.3 s this client waits
    warm = {"model": "faulty-choices", "messages": [{"role": "user", "content": "warm up"}], "max_tokens": 1}
    assert httpx.post(f"{base_url}/chat/completions", json=warm, timeout=120).status_code == 200
    before = usage()
    faulty.steps.clear()
    body = {
        "model": "faulty-choices",
        "messages": [{"role": "user", "content": "A slow answer nobody waits for."}],
        "max_tokens": 60,
        "ignore_eos": True,  # 60 slow steps: a sampled end-of-sequence could answer within the 0.3 s
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{base_url}/chat/completions", json=body, timeout=httpx.Timeout(30, read=0.3))
    left = time.monotonic()
    time.sleep(40 * faulty.STEP_S)
    late = [t for t in faulty.steps if t > left + 5 * faulty.STEP_S]
    assert faulty.steps and not late, f"{len(late)} generation steps ran after the client had left"
    entry = httpx.get(f"{base_url}/models/faulty-choices", timeout=10).json()
    assert entry["deployment"]["active"] == 0
    # what was generated before the client left is metered, as for an interrupted stream
    after = usage()
    assert after["requests"] == before["requests"] + 1
    assert after["input_tokens"] > before["input_tokens"]
    assert 0 < after["output_tokens"] - before["output_tokens"] < 60


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens", "maximum_tokens"])
def test_too_many_output_tokens_names_the_field_sent(base_url: str, field: str) -> None:
    body = {"model": "demo-vlm", "messages": [{"role": "user", "content": "x"}], field: 100_000}
    assert _error(_post(base_url, body), 400)["param"] == field


def test_checking_a_large_schema_does_not_block_other_requests(base_url: str, chat_server: LiveServer) -> None:
    """JSON Schemas are checked off the event loop: the server answers others meanwhile."""
    import threading

    from mmserve.api.chat.schemas import check_schema

    props = {f"p{i}": {"type": "string", "description": "x" * 50, "enum": ["a", "b", "c"]} for i in range(4000)}
    schema = {"type": "object", "properties": props}
    started = time.monotonic()
    check_schema(schema, param="p")
    check_s = time.monotonic() - started  # how long the check takes on this machine
    body = {
        # no tool calling: refused right after the tools are checked. No declared context either:
        # tiny-text's (2048 tokens) bounds a request's text at 32 KB, and this schema is 0.4 MB
        "model": "slow-text",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
    }
    done = threading.Event()
    waits: list[float] = []

    def poll() -> None:
        with httpx.Client(base_url=chat_server.url, timeout=30) as client:
            while not done.is_set():
                t = time.monotonic()
                client.get("/health")
                waits.append(time.monotonic() - t)
                time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        _error(_post(base_url, body), 400)
    finally:
        done.set()
        poller.join()
    # Counted, not timed one by one: this process's threads share one GIL with the check, so a
    # single answer may wait a while, but a blocked loop would answer none until the check ended.
    quick = [w for w in waits if w < check_s / 4]
    assert len(quick) >= 5, f"/health answered {len(quick)} times quickly during a {check_s:.2f} s check: {waits}"


def test_a_stream_whose_client_leaves_before_its_first_chunk_frees_its_slot(
    base_url: str, chat_server: LiveServer
) -> None:
    """The slot and the usage of a started stream do not depend on its body ever being read."""
    from tests.helpers.asgi import stalled_post

    def usage() -> dict:
        return httpx.get(f"{base_url}/usage?model=tiny-text", timeout=10).json()["total"]

    before = usage()
    body = {"model": "tiny-text", "messages": [{"role": "user", "content": "Hello there"}], "stream": True}
    sent = stalled_post(chat_server, "/v1/chat/completions", body)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert not any(m.get("body") for m in sent), "no chunk should have been sent to the stalled client"
    entry = httpx.get(f"{base_url}/models/tiny-text", timeout=10).json()
    assert entry["deployment"]["active"] == 0
    after = usage()
    assert after["requests"] == before["requests"] + 1
    assert after["input_tokens"] > before["input_tokens"]
    # and the model still answers
    again = _post(base_url, {"model": "tiny-text", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert again.status_code == 200
