"""Requests as vLLM is sent them, and vLLM's chunks (recorded from vLLM 0.32) read back as engine deltas."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from mmserve.engines.types import ChatInput, ChatMessage, ChatPart, SamplingParams
from mmserve.engines.vllm.mapping import ChunkReader, RequestShape, chat_body, coalesce, refusal, top_entries
from mmserve.engines.vllm.model_files import ModelFiles
from mmserve.errors import (
    ContextLengthError,
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
    ModelCapabilityError,
)

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def test_body_sends_tools_to_the_template_only_and_the_grammar_as_structured_output() -> None:
    request = ChatInput(
        messages=[ChatMessage("user", [ChatPart("text", text="a"), ChatPart("text", text="b")])],
        params=SamplingParams(max_tokens=9, temperature=0.5, stop=["x"], seed=3, logprobs=True, top_logprobs=5),
        tools=TOOLS,
        tool_choice="required",
        response_format={"type": "json_object"},
        extra={"chat_template_kwargs": {"enable_thinking": False}},
    )
    body = chat_body(request, RequestShape("m", 9, {"7": -100.0}, grammar="start: x", prompt_text=True))
    assert body["messages"] == [{"role": "user", "content": "ab"}]  # text parts joined, as transformers does
    assert body["tools"] == TOOLS and body["tool_choice"] == "none"  # vLLM parses nothing: mmserve does
    assert "response_format" not in body and body["structured_outputs"] == {"grammar": "start: x"}
    assert body["top_logprobs"] == 6  # one more than asked: vLLM's list starts with the sampled token
    assert body["logit_bias"] == {"7": -100.0} and body["return_prompt_text"] is True
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert (body["max_tokens"], body["seed"], body["stop"], body["temperature"]) == (9, 3, ["x"], 0.5)
    assert "n" not in body and "return_token_ids" not in body


def test_images_go_as_png_data_uris_and_history_keeps_reasoning_and_calls() -> None:
    image = Image.new("RGB", (20, 10), (255, 0, 0))
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    request = ChatInput(
        messages=[
            ChatMessage("user", [ChatPart("text", text="see"), ChatPart("image", image=image)]),
            ChatMessage("assistant", "", tool_calls=calls, reasoning_content="hmm"),
            ChatMessage("tool", "sunny", tool_call_id="c1"),
        ]
    )
    body = chat_body(request, RequestShape("m", 4, token_ids=True))
    user, assistant, tool = body["messages"]
    url = user["content"][1]["image_url"]["url"]
    assert user["content"][0] == {"type": "text", "text": "see"} and url.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (20, 10)
    assert assistant["tool_calls"] == calls and assistant["reasoning"] == "hmm"
    assert tool == {"role": "tool", "content": "sunny", "tool_call_id": "c1"}
    assert body["return_token_ids"] is True


FIRST = {
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    "usage": {"prompt_tokens": 17, "completion_tokens": 0},
    "prompt_token_ids": [10, 5, 5, 5, 11],
    "prompt_text": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n",
}


def _content(text: str, n: int, finish: str | None = None, **extra: object) -> dict:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish, **extra}
    return {"choices": [choice], "usage": {"prompt_tokens": 17, "completion_tokens": n}}


def test_chunks_become_deltas_with_counts_and_the_finish_last() -> None:
    reader = ChunkReader("card", image_token_id=5)
    [first] = reader.feed(FIRST)
    assert (first.prompt_tokens, first.image_tokens) == (17, 3) and first.prompt_text == FIRST["prompt_text"]
    [d] = reader.feed(_content("He", 1))
    assert (d.text, d.completion_tokens, d.finish_reason) == ("He", 1, None)
    assert reader.feed(_content("llo", 2, "length")) == []  # held until the body ends
    assert reader.feed({"choices": [], "usage": {"prompt_tokens": 17, "completion_tokens": 2}}) == []
    last = reader.finish()
    assert (last.text, last.finish_reason, last.completion_tokens, last.prompt_tokens) == ("llo", "length", 2, 17)


def test_a_stop_string_or_token_is_a_stop() -> None:
    reader = ChunkReader("card")
    reader.feed(FIRST)
    reader.feed(_content("", 3, "stop", stop_reason=93))
    assert reader.finish().finish_reason == "stop"


@pytest.mark.parametrize(
    "chunk",
    [
        {"error": {"message": "EngineCore encountered an issue.", "type": "InternalServerError", "code": 500}},
        _content("", 1, "abort"),
    ],
)
def test_engine_failure_or_shutdown_mid_stream_is_a_503(chunk: dict) -> None:
    reader = ChunkReader("card")
    reader.feed(FIRST)
    with pytest.raises(EngineUnavailableError) as e:
        reader.feed(chunk)
    assert e.value.status_code == 503 and "card" in e.value.message and "EngineCore" not in e.value.message


def test_a_body_that_ends_unfinished_is_a_503() -> None:
    reader = ChunkReader("card")
    reader.feed(FIRST)
    reader.feed(_content("a", 1))
    with pytest.raises(EngineUnavailableError):
        reader.finish()


def test_top_logprobs_are_the_true_top_k() -> None:
    # vLLM 0.32 with top_logprobs=3 (k + 1 for k=2): the sampled token first, then the best ones
    listed = [
        {"token": "w", "logprob": -6.3, "bytes": [119]},
        {"token": "re", "logprob": -5.8, "bytes": [114, 101]},
        {"token": "t", "logprob": -5.9, "bytes": [116]},
    ]
    assert [t.token for t in top_entries(listed, 2)] == ["re", "t"]
    reader = ChunkReader("card", top_logprobs=2)
    reader.feed(FIRST)
    [d] = reader.feed(
        _content(
            "w", 1, logprobs={"content": [{"token": "w", "logprob": -6.3, "bytes": [119], "top_logprobs": listed}]}
        )
    )
    assert d.logprobs and d.logprobs[0].token == "w" and [t.logprob for t in d.logprobs[0].top_logprobs] == [-5.8, -5.9]


def _error(message: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": "BadRequestError", "param": param, "code": 400}}


def test_vllm_refusals_become_mmserve_errors_without_its_internals() -> None:
    ctx = refusal(
        "c",
        400,
        _error("This model's maximum context length is 2048 tokens...", "input_tokens"),
        context=2048,
        schema_param=None,
    )
    assert isinstance(ctx, ContextLengthError) and ctx.param == "messages" and "2048 tokens" in ctx.message
    images = refusal("c", 400, _error("tiny is not a multimodal model"), context=None, schema_param=None)
    assert isinstance(images, ModelCapabilityError) and "text-only" in images.message
    schema = refusal(
        "c", 400, _error("Grammar error: unsupported keyword"), context=None, schema_param="response_format"
    )
    assert (
        isinstance(schema, InvalidRequestError)
        and schema.param == "response_format"
        and schema.code == "invalid_schema"
    )
    other = refusal(
        "c", 400, _error("temperature must be non-negative", "temperature"), context=None, schema_param=None
    )
    assert isinstance(other, InvalidRequestError) and other.status_code == 400
    assert isinstance(refusal("c", 503, None, context=None, schema_param=None), EngineUnavailableError)
    internal = refusal("c", 500, _error("Traceback ..."), context=None, schema_param=None)
    assert (
        isinstance(internal, EngineError)
        and internal.to_dict()["error"]["message"] == "The server failed to process the request."
    )


def test_text_that_arrived_together_goes_on_as_one_delta() -> None:
    reader = ChunkReader("card", top_logprobs=0)
    entry = {"token": "a", "logprob": -1.0, "bytes": [97], "top_logprobs": []}
    deltas = reader.feed(FIRST) + reader.feed(_content("He", 1, logprobs={"content": [entry]}))
    deltas += reader.feed(_content("llo", 2, logprobs={"content": [entry]})) + reader.feed(_content("!", 3, "stop"))
    first, merged = coalesce(deltas)  # the finish is held by the reader until the body ends
    assert first.prompt_tokens == 17 and first.text == ""
    assert (merged.text, merged.completion_tokens) == ("Hello", 2) and merged.logprobs and len(merged.logprobs) == 2


def test_the_models_min_new_tokens_becomes_vllms_min_tokens(tmp_path: Path) -> None:
    # vLLM does not read generation_config.min_new_tokens: mmserve sends it, as transformers honours it
    (tmp_path / "generation_config.json").write_text(json.dumps({"min_new_tokens": 3, "suppress_tokens": [5]}))
    files = ModelFiles.read(tmp_path)
    assert (files.min_new_tokens, files.suppress_tokens) == (3, (5,))
    request = ChatInput(messages=[ChatMessage("user", "a")])
    assert chat_body(request, RequestShape("m", 9, min_tokens=files.min_new_tokens))["min_tokens"] == 3
    assert "min_tokens" not in chat_body(request, RequestShape("m", 9))
    (tmp_path / "generation_config.json").write_text(json.dumps({"min_new_tokens": None}))
    assert ModelFiles.read(tmp_path).min_new_tokens == 0
