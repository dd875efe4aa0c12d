"""How errors are answered and logged: expected 503s are one-line warnings, bugs keep their traceback."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.api.completions.protocol import CompletionRequest
from mmserve.api.errors import install_handlers, untag_loc, validation_error
from mmserve.api.streaming import error_event
from mmserve.errors import (
    MAX_MESSAGE_CHARS,
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
    MMServeError,
    ModelNotFoundError,
    OverloadedError,
)


def _app() -> FastAPI:
    app = FastAPI()
    install_handlers(app)
    raised: dict[str, Exception] = {
        "full": OverloadedError("The queue of model 'm' is full; retry shortly.", headers={"Retry-After": "1"}),
        "unavailable": EngineUnavailableError("The model 'm' could not be loaded."),
        "engine": EngineError("CUDA error: device-side assert"),
        "bug": KeyError("oops"),
    }

    @app.get("/raise/{what}")
    async def fail(what: str) -> None:
        try:
            raise RuntimeError("the cause")
        except RuntimeError as cause:
            raise raised[what] from cause

    return app


@pytest.mark.parametrize("what", ["full", "unavailable"])
async def test_expected_503s_are_one_line_warnings(what: str, caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with caplog.at_level(logging.INFO):
            r = await client.get(f"/raise/{what}")
    assert r.status_code == 503
    records = [rec for rec in caplog.records if rec.name.startswith("mmserve")]
    assert len(records) == 1, records
    rec = records[0]
    assert rec.levelno == logging.WARNING and rec.exc_info is None and "\n" not in rec.getMessage()
    assert ("503" in rec.getMessage() and "the queue" in rec.getMessage().lower()) or "loaded" in rec.getMessage()


@pytest.mark.parametrize("what", ["engine", "bug"])
async def test_failures_keep_their_traceback(what: str, caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get(f"/raise/{what}")
    assert r.status_code == 500 and "Traceback" not in r.text and "CUDA" not in r.text
    errors = [rec for rec in caplog.records if rec.name.startswith("mmserve") and rec.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_stream_error_events_log_the_same_way(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("mmserve.test")
    with caplog.at_level(logging.INFO):
        event = error_event(OverloadedError("queue full"), log, "chat stream")
    assert json.loads(event)["error"]["code"] == "overloaded"
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]


def test_messages_and_params_are_bounded() -> None:
    err = MMServeError("x" * 1_000_000 + " Send less.", param="p" * 100_000)
    assert len(err.message) <= MAX_MESSAGE_CHARS + 60 and err.message.endswith("Send less.")
    assert "characters" in err.message and len(err.param or "") < 400
    assert len(ModelNotFoundError("m" * 3_000_000).message) < 300


def test_union_tags_are_dropped_from_locations_only_when_the_input_says_so() -> None:
    part = {"type": "image_url", "image_url": {"url": "u", "detail": "ultra"}}
    assert untag_loc([1, "image_url", "image_url", "detail"], [{}, part]) == [1, "image_url", "detail"]
    assert untag_loc(["image_url", "image_url"], {"type": "image_url"}) == ["image_url"]
    # a plain object whose type happens to name a key: nothing is a tag
    fmt = {"type": "json_schema", "json_schema": {"name": 5}}
    assert untag_loc(["json_schema", "name"], fmt) == ["json_schema", "name"]
    assert untag_loc(["a", "b"], None) == ["a", "b"]
    errs = [{"loc": ("body", "messages", 0, "content", "str"), "type": "string_type", "msg": "bad"}]
    assert validation_error(errs, body={"messages": [{"content": 5}]}).param == "messages[0].content"
    assert isinstance(validation_error([]), InvalidRequestError)


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (CompletionRequest, {"model": "m", "prompt": "x", "stop": [""]}),
        (ChatCompletionRequest, {"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["ok", ""]}),
    ],
)
def test_a_constrained_union_member_is_no_part_of_the_field_named(model: type[BaseModel], body: dict) -> None:
    """``stop: constrained str | list[constrained str]``: pydantic tags its members ``constrained-str``;
    an empty stop string was reported as 'stop.constrained-str' (not a field a client sent)."""
    with pytest.raises(ValidationError) as e:
        model.model_validate(body)
    errs = [{**err, "loc": ("body", *err["loc"])} for err in e.value.errors()]
    err = validation_error(errs, body=body)
    assert err.param == f"stop[{len(body['stop']) - 1}]" and "at least 1 character" in err.message, err.message
