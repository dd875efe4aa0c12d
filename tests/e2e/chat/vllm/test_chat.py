"""Chat through the openai SDK against `mmserve serve` whose card runs on a real vLLM server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI

from tests.e2e.chat.vllm.conftest import ADMIN, MAX_OUTPUT
from tests.helpers.images import data_uri
from tests.helpers.process import ServerProcess
from tests.helpers.vllm import SETUP_TIMEOUT_S

pytestmark = pytest.mark.timeout(SETUP_TIMEOUT_S)

HELLO = [{"role": "user", "content": "Hello, how can I help you today?"}]
NO_THINKING = {"reasoning_effort": "none"}  # the template closes an empty trace: all output is the answer
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Rome"]}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
KEY_ARGS = ["--name", "vllm-user", "--models", "tiny-vllm"]
RATING = {
    "type": "object",
    "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5}, "why": {"type": "string"}},
    "required": ["stars", "why"],
    "additionalProperties": False,
}


def test_plain_answer(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="tiny-vllm", messages=HELLO, max_tokens=12, seed=3, **NO_THINKING
    )
    assert raw.headers["x-mmserve-model"] == "tiny-vllm"
    r = raw.parse()
    assert r.object == "chat.completion" and r.model == "tiny-vllm"
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage and 0 < r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_answer_matches_the_plain_one_with_usage_last(client: OpenAI) -> None:
    kwargs = {"model": "tiny-vllm", "messages": HELLO, "max_tokens": 16, "seed": 11, **NO_THINKING}
    plain = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content  # the same seed: the same tokens, streamed or not
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_n_choices_are_generated_and_counted(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny-vllm", messages=HELLO, max_tokens=6, n=2, extra_body={"ignore_eos": True}, **NO_THINKING
    )
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].message.content != r.choices[1].message.content
    assert r.usage and r.usage.completion_tokens == 12


def test_same_seed_same_text_other_seed_other_text(client: OpenAI) -> None:
    def answer(seed: int) -> str:
        r = client.chat.completions.create(
            model="tiny-vllm", messages=HELLO, max_tokens=16, seed=seed, temperature=1.0, **NO_THINKING
        )
        return r.choices[0].message.content or ""

    first = answer(42)
    assert answer(42) == first
    assert answer(43) != first


def test_stop_sequence_ends_the_answer(client: OpenAI) -> None:
    kwargs = {"model": "tiny-vllm", "messages": HELLO, "max_tokens": 24, "seed": 5, **NO_THINKING}
    full = client.chat.completions.create(**kwargs, extra_body={"ignore_eos": True}).choices[0].message.content
    assert full and len(full) > 12
    stop = full[8:11]
    r = client.chat.completions.create(**kwargs, stop=[stop], extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == full[: full.index(stop)]


def test_tool_choice_required_gives_one_valid_call(client: OpenAI) -> None:
    for seed in (1, 2, 3):
        r = client.chat.completions.create(
            model="tiny-vllm",
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="required",
            parallel_tool_calls=False,
            seed=seed,
            **NO_THINKING,
        )
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls and len(choice.message.tool_calls) == 1
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather" and call.id.startswith("call_")
        jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


def test_streamed_tool_call(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="tiny-vllm",
            messages=[{"role": "user", "content": "Weather in Rome?"}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            stream=True,
            seed=4,
            **NO_THINKING,
        )
    )
    pieces = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert {p.index for p in pieces} == {0}  # one call, streamed as its name, then its arguments
    name = "".join(p.function.name or "" for p in pieces if p.function)
    arguments = "".join(p.function.arguments or "" for p in pieces if p.function)
    assert name == "get_weather" and pieces[0].id
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_json_schema_answers_validate(client: OpenAI) -> None:
    for seed in (1, 2, 3):
        r = client.chat.completions.create(
            model="tiny-vllm",
            messages=[{"role": "user", "content": "Rate mmserve."}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "rating", "schema": RATING, "strict": True},
            },
            seed=seed,
            **NO_THINKING,
        )
        assert r.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(r.choices[0].message.content or ""), RATING)


def test_reasoning_opened_by_the_template_is_reasoning_content(client: OpenAI) -> None:
    # thinking on: the template ends the prompt with <think>, so the answer starts inside the trace
    r = client.chat.completions.create(
        model="tiny-vllm",
        messages=HELLO,
        max_tokens=20,
        seed=9,
        reasoning_effort="high",
        extra_body={"ignore_eos": True},
    )
    reasoning = getattr(r.choices[0].message, "reasoning_content", None)
    assert reasoning and "<think>" not in reasoning
    assert r.usage and r.usage.completion_tokens_details and r.usage.completion_tokens_details.reasoning_tokens > 0


def test_json_schema_after_a_trace_the_template_opened(client: OpenAI) -> None:
    """The grammar starts inside the trace (mmserve asked vLLM for the prompt first): the model reasons freely.

    Had the grammar not known, it would have forced JSON at once, and the parser (told by the
    prompt that the trace is open) would have read that JSON as reasoning.
    """
    for seed in (1, 2):
        r = client.chat.completions.create(
            model="tiny-vllm",
            messages=[{"role": "user", "content": "Rate mmserve."}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "rating", "schema": RATING, "strict": True},
            },
            reasoning_effort="high",
            max_tokens=40,
            seed=seed,
        )
        message = r.choices[0].message
        reasoning = getattr(message, "reasoning_content", None) or ""
        assert not reasoning.lstrip().startswith('{"')
        if message.content:  # the trace closed within max_tokens: then the answer is the JSON
            jsonschema.validate(json.loads(message.content), RATING)


def test_logprobs_and_true_top_logprobs(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny-vllm", messages=HELLO, max_tokens=6, logprobs=True, top_logprobs=3, seed=2, **NO_THINKING
    )
    entries = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert entries and r.usage and len(entries) == r.usage.completion_tokens
    for e in entries:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        values = [t.logprob for t in e.top_logprobs]
        assert values == sorted(values, reverse=True)  # the most likely first
        assert e.logprob <= values[0] + 1e-6  # nothing sampled beats the best
        assert e.bytes == list(e.token.encode())


def test_ignore_eos_generates_max_tokens(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny-vllm", messages=HELLO, max_tokens=40, extra_body={"ignore_eos": True}, **NO_THINKING
    )
    assert r.usage and r.usage.completion_tokens == 40 and r.choices[0].finish_reason == "length"


def test_without_max_tokens_the_card_limit_applies(client: OpenAI) -> None:
    r = client.chat.completions.create(
        model="tiny-vllm", messages=HELLO, extra_body={"ignore_eos": True}, **NO_THINKING
    )
    assert r.usage and r.usage.completion_tokens == MAX_OUTPUT and r.choices[0].finish_reason == "length"


def test_image_part_to_the_text_model_is_refused_clearly(client: OpenAI) -> None:
    parts = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": data_uri()}}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny-vllm", messages=[{"role": "user", "content": parts}])  # type: ignore[misc]
    error = e.value.body
    assert isinstance(error, dict)
    assert error["param"] == "messages[0].content[1].image_url" and error["code"] == "model_capability"
    assert "does not accept images" in error["message"]


def test_prompt_beyond_the_context_is_a_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="tiny-vllm", messages=[{"role": "user", "content": "Hello " * 2100}], max_tokens=4
        )
    assert isinstance(e.value.body, dict)
    assert e.value.body["code"] == "context_length_exceeded" and e.value.body["param"] == "messages"
    assert "2048 tokens" in e.value.body["message"]


def test_max_tokens_above_the_card_limit_is_a_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny-vllm", messages=HELLO, max_tokens=MAX_OUTPUT + 1)
    assert isinstance(e.value.body, dict) and e.value.body["param"] == "max_tokens"


def test_keys_limit_models_and_usage_is_metered(vllm_server: ServerProcess) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "mmserve.cli", "keys", "--data-dir", str(vllm_server.data_dir), "create", *KEY_ARGS],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    key = json.loads(made.stdout)["key"]
    client = OpenAI(base_url=vllm_server.url + "/v1", api_key=key, max_retries=0, timeout=300)
    sent = [0, 0]
    r = client.chat.completions.create(model="tiny-vllm", messages=HELLO, max_tokens=5, **NO_THINKING)
    assert r.usage
    sent[0] += r.usage.prompt_tokens
    sent[1] += r.usage.completion_tokens
    stream = client.chat.completions.create(
        model="tiny-vllm", messages=HELLO, max_tokens=4, stream=True, stream_options={"include_usage": True}
    )
    last = list(stream)[-1].usage
    assert last
    sent[0] += last.prompt_tokens
    sent[1] += last.completion_tokens
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="tiny-tf", messages=HELLO, max_tokens=2)
    time.sleep(0.5)  # usage is written in batches
    usage = httpx.get(vllm_server.url + "/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()
    row = next(r for r in usage["data"] if r["model"] == "tiny-vllm")
    assert row["requests"] == 2 and [row["input_tokens"], row["output_tokens"]] == sent
    assert row["cost"] == pytest.approx((1.0 * sent[0] + 2.0 * sent[1]) / 1e6)


def test_metrics_report_the_replica_queue_and_ttft(client: OpenAI, vllm_server: ServerProcess) -> None:
    client.chat.completions.create(model="tiny-vllm", messages=HELLO, max_tokens=2, **NO_THINKING)
    text = httpx.get(vllm_server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    labels = '{model="tiny-vllm",replica="0"}'
    assert f"mmserve_engine_queue_depth{labels} 0.0" in text
    assert f"mmserve_engine_running_requests{labels}" in text
    count = re.search(r'mmserve_engine_time_to_first_token_seconds_count\{model="tiny-vllm",replica="0"\} (\S+)', text)
    assert count and float(count.group(1)) >= 1
