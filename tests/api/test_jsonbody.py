"""Request models read JSON types as the published schema does: numbers are numbers, booleans are booleans.

pydantic's lax mode would read ``"stream": 0`` as false, ``"logprobs": "true"`` as true and
``"max_tokens": "5"`` as 5, which the schema calls invalid (found by random fuzzing runs).
Multipart forms carry every field as text, so a form's ``"true"`` and ``"5"`` stay a boolean and
a number there (validated with :data:`FORM`).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mmserve.api.chat.protocol import ChatCompletionRequest
from mmserve.api.images.protocol import ImageEditRequest, ImageGenerationRequest
from mmserve.api.jsonbody import FORM
from mmserve.api.responses.protocol import ResponseRequest
from mmserve.api.transcriptions.protocol import TranscriptionForm

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _refused(model: type, body: dict, field: tuple[str | int, ...]) -> None:
    with pytest.raises(ValidationError) as e:
        model.model_validate(body)
    (error,) = e.value.errors()
    assert error["loc"] == field
    assert error["type"] == "bool_type"


@pytest.mark.parametrize("value", [0, 1, 0.0, "true", "false", "1", [], {}])
def test_a_json_boolean_is_true_or_false_only(value: object) -> None:
    _refused(ChatCompletionRequest, {**CHAT, "stream": value}, ("stream",))
    _refused(ChatCompletionRequest, {**CHAT, "logprobs": value}, ("logprobs",))
    _refused(ImageGenerationRequest, {"prompt": "p", "stream": value}, ("stream",))
    _refused(ResponseRequest, {"model": "m", "input": "hi", "store": value}, ("store",))


def test_nested_booleans_too() -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": 1}}
    _refused(ChatCompletionRequest, body, ("stream_options", "include_usage"))


@pytest.mark.parametrize("value", [True, False])
def test_true_and_false_pass(value: bool) -> None:
    assert ChatCompletionRequest.model_validate({**CHAT, "stream": value, "logprobs": value}).stream is value
    assert ResponseRequest.model_validate({"model": "m", "input": "hi", "store": value}).store is value


def test_null_is_left_to_the_field() -> None:
    assert ChatCompletionRequest.model_validate({**CHAT, "logprobs": None}).logprobs is None  # optional
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({**CHAT, "stream": None})  # not optional


def test_a_form_field_is_text() -> None:
    edit = ImageEditRequest.model_validate({"prompt": "p", "stream": "true"}, context=FORM)
    assert edit.stream is True
    form = TranscriptionForm.model_validate({"model": "m", "stream": "false"}, context=FORM)
    assert form.stream is False


@pytest.mark.parametrize("value", [True, "3", "3.5"])
def test_a_json_number_is_a_number(value: object) -> None:
    for field in ("seed", "max_tokens", "temperature"):
        with pytest.raises(ValidationError) as e:
            ChatCompletionRequest.model_validate({**CHAT, field: value})
        (error,) = e.value.errors()
        assert error["loc"] == (field,)
        assert error["type"] == "number_type"


def test_a_form_number_is_text() -> None:
    form = TranscriptionForm.model_validate({"model": "m", "temperature": "0.5"}, context=FORM)
    assert form.temperature == 0.5
    with pytest.raises(ValidationError):  # a boolean is no number, form or not
        TranscriptionForm.model_validate({"model": "m", "temperature": True}, context=FORM)
