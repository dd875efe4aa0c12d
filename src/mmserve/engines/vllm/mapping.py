"""mmserve's chat inputs as vLLM OpenAI requests, and vLLM's streamed chunks as engine deltas.

What mmserve asks of vLLM, and why:

- **Raw text back, mmserve's parsers over it.** Tools go to vLLM with ``tool_choice: "none"``:
  the chat template still lists them, but vLLM parses nothing; reasoning is not split either
  (no ``--reasoning-parser``). The chat service reads tool calls and reasoning out of the text
  with :mod:`mmserve.chatformat`, as for every engine, so one card field
  (``capabilities.tool_call_format``) decides the format whatever the engine, calls the
  request did not offer stay text, ``parallel_tool_calls: false`` keeps one call, and the
  streamed shape is the same. (vLLM's own hermes parser, measured on a random model, returned
  ``finish_reason: tool_calls`` with no calls when the JSON did not parse.)
- **The answer's shape as mmserve's grammar.** ``response_format`` and a forced
  ``tool_choice`` become the llguidance grammar the transformers engine enforces
  (:class:`~mmserve.chatformat.grammar.OutputConstraint`), sent as ``structured_outputs.grammar``
  to vLLM's guidance backend, so both engines constrain answers identically (compact JSON, the
  reasoning trace allowed first, one or many calls).
- **Counts and prompt from vLLM.** ``continuous_usage_stats`` puts token counts on every chunk
  (the prompt's, image tokens included, on the first); ``return_prompt_text`` gives the rendered
  prompt to the reasoning parser; ``return_token_ids`` lets image tokens be counted.
- **The model's suppressed tokens as a logit bias.** vLLM ignores ``generation_config.suppress_tokens``;
  a bias of -100 on them does what transformers does with them. Its ``min_new_tokens`` likewise
  becomes vLLM's ``min_tokens``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pybase64

from mmserve.engines.common.openai_body import sampling_fields
from mmserve.engines.types import ChatDelta, ChatInput, ChatMessage, TokenLogprob, TopLogprob
from mmserve.errors import (
    ContextLengthError,
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
    MMServeError,
    ModelCapabilityError,
)

SUPPRESS_BIAS = -100.0  # vLLM's (and OpenAI's) lowest logit bias


@dataclass(frozen=True)
class RequestShape:
    """What one request needs from vLLM besides the chat itself."""

    model: str  # vLLM's served model name
    max_tokens: int
    logit_bias: dict[str, float] = field(default_factory=dict)
    grammar: str | None = None
    prompt_text: bool = False  # the reasoning parser needs the rendered prompt
    token_ids: bool = False  # image tokens are counted from the prompt's ids
    min_tokens: int = 0  # the model's generation_config.min_new_tokens


def chat_body(request: ChatInput, shape: RequestShape) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body (streamed, one choice: the service runs ``n`` of them)."""
    p = request.params
    body: dict[str, Any] = {
        "model": shape.model,
        "messages": [vllm_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        "max_tokens": shape.max_tokens,
        **sampling_fields(p),
    }
    if p.logprobs:
        body["logprobs"] = True
        # vLLM lists the sampled token first, then the top k: one more lets the true top k be kept
        body["top_logprobs"] = p.top_logprobs + 1 if p.top_logprobs else 0
    if p.ignore_eos:
        body["ignore_eos"] = True
    if shape.min_tokens:
        body["min_tokens"] = shape.min_tokens
    if request.tools:
        body["tools"] = request.tools
        body["tool_choice"] = "none"  # the template lists them; mmserve parses and enforces calls
    kwargs = request.extra.get("chat_template_kwargs")
    if kwargs:
        body["chat_template_kwargs"] = kwargs
    if shape.logit_bias:
        body["logit_bias"] = shape.logit_bias
    if shape.grammar is not None:
        body["structured_outputs"] = {"grammar": shape.grammar}
    if shape.prompt_text:
        body["return_prompt_text"] = True
    if shape.token_ids:
        body["return_token_ids"] = True
    return body


def vllm_message(m: ChatMessage) -> dict[str, Any]:
    """An OpenAI message; images (already fetched, decoded and bounded by mmserve) as PNG data URIs."""
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, str):
        out["content"] = m.content
    elif all(p.type == "text" for p in m.content):
        out["content"] = "".join(p.text for p in m.content)  # as the transformers engine joins them
    else:
        parts: list[dict[str, Any]] = []
        for p in m.content:
            if p.type == "image" and p.image is not None:
                parts.append({"type": "image_url", "image_url": {"url": _png_data_uri(p.image)}})
            elif p.text:
                parts.append({"type": "text", "text": p.text})
        out["content"] = parts
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = m.tool_calls
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    if m.reasoning_content:
        out["reasoning"] = m.reasoning_content  # vLLM hands it to the template as reasoning_content too
    return out


def _png_data_uri(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + pybase64.b64encode(buf.getvalue()).decode()


# ---------------------------------------------------------------------- the stream back


@dataclass
class ChunkReader:
    """Turns one streamed vLLM answer (chunk by chunk) into engine deltas."""

    card_id: str
    image_token_id: int | None = None
    top_logprobs: int = 0
    first: bool = True
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    final: ChatDelta | None = None  # the delta with the finish reason, sent once the body is read

    def feed(self, chunk: dict[str, Any]) -> list[ChatDelta]:
        error = chunk.get("error")
        if error is not None:
            raise stream_error(self.card_id, error)
        usage = chunk.get("usage")
        if usage:
            self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
            self.completion_tokens = usage.get("completion_tokens") or self.completion_tokens
        out: list[ChatDelta] = []
        if self.first:
            self.first = False
            ids = chunk.get("prompt_token_ids")
            images = ids.count(self.image_token_id) if ids and self.image_token_id is not None else 0
            prompt = chunk.get("prompt_text")
            out.append(ChatDelta(prompt_tokens=self.prompt_tokens, prompt_text=prompt, image_tokens=images))
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content") or ""
            logprobs = _entries(choice.get("logprobs"), self.top_logprobs)
            reason = choice.get("finish_reason")
            if reason is not None:
                if reason == "abort":  # the server is stopping
                    raise EngineUnavailableError(
                        f"The vLLM server of '{self.card_id}' stopped while answering. Retry.", code="model_restarting"
                    )
                finish = "length" if reason == "length" else "stop"
                self.final = ChatDelta(text=text, finish_reason=finish, logprobs=logprobs)
            elif text or logprobs:
                out.append(ChatDelta(text=text, completion_tokens=self.completion_tokens, logprobs=logprobs))
        return out

    def finish(self) -> ChatDelta:
        """The last delta, once the body has ended."""
        if self.final is None:
            raise EngineUnavailableError(
                f"The vLLM server of '{self.card_id}' ended the answer without finishing it. Retry.",
                code="model_restarting",
            )
        self.final.completion_tokens = self.completion_tokens
        self.final.prompt_tokens = self.prompt_tokens
        return self.final


def coalesce(deltas: list[ChatDelta]) -> list[ChatDelta]:
    """Text deltas that arrived together, as one (the prompt's delta stays first and alone).

    When mmserve reads slower than vLLM writes (under load), several tokens wait in one read;
    passing them on as one delta saves the chat service and the client a chunk each. Idle, vLLM's
    chunks arrive one by one and stream token by token.
    """
    out: list[ChatDelta] = []
    for d in deltas:
        last = out[-1] if out else None
        if last is not None and _plain(last) and _plain(d):
            last.text += d.text
            last.completion_tokens = d.completion_tokens
            if d.logprobs:
                last.logprobs = (last.logprobs or []) + d.logprobs
        else:
            out.append(d)
    return out


def _plain(d: ChatDelta) -> bool:
    return d.prompt_tokens is None and d.prompt_text is None and d.finish_reason is None


def _entries(logprobs: dict[str, Any] | None, top: int) -> list[TokenLogprob] | None:
    if not logprobs or not logprobs.get("content"):
        return None
    return [
        TokenLogprob(e["token"], e["logprob"], e.get("bytes"), top_entries(e.get("top_logprobs") or [], top))
        for e in logprobs["content"]
    ]


def top_entries(candidates: list[dict[str, Any]], top: int) -> list[TopLogprob]:
    """The ``top`` most likely of vLLM's candidates, best first.

    vLLM lists the sampled token first and then the most likely ones, and cuts the list at the
    requested count: the sampled token would take the place of the k-th best. mmserve asks for
    k + 1 and keeps the best k, OpenAI's meaning of ``top_logprobs``.
    """
    ranked = sorted(candidates, key=lambda c: c["logprob"], reverse=True)[:top]
    return [TopLogprob(c["token"], c["logprob"], c.get("bytes")) for c in ranked]


# ---------------------------------------------------------------------- errors


def refusal(card_id: str, status: int, body: Any, *, context: int | None, schema_param: str | None) -> MMServeError:
    """What a non-200 answer of vLLM means for the client (vLLM's messages name its own internals)."""
    error = body.get("error") if isinstance(body, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    param = error.get("param") if isinstance(error, dict) else None
    if status == 400:
        if param == "input_tokens" or "maximum context length" in message:
            room = f" of {context} tokens" if context else ""
            return ContextLengthError(
                f"The prompt is longer than the context{room} of the model '{card_id}'. "
                "Shorten the messages or send fewer images.",
                param="messages",
            )
        if "is not a multimodal model" in message:
            return ModelCapabilityError(
                f"The model '{card_id}' runs text-only weights and cannot take images. Remove the image parts.",
                param="messages",
            )
        if schema_param is not None and ("grammar" in message.lower() or "schema" in message.lower()):
            first = message.strip().splitlines()[0] if message.strip() else "unsupported schema"
            return InvalidRequestError(
                f"The schema in '{schema_param}' cannot be enforced: {first}", param=schema_param, code="invalid_schema"
            )
        return InvalidRequestError(f"The model '{card_id}' refused the request: {message or 'bad request'}")
    if status in (502, 503, 504):
        return EngineUnavailableError(f"The vLLM server of '{card_id}' is not ready. Retry.", code="model_restarting")
    return EngineError(f"vLLM answered HTTP {status} for '{card_id}': {message}")


def stream_error(card_id: str, error: Any) -> MMServeError:
    """An error event in the middle of vLLM's stream: its engine failed (it is then restarted)."""
    return EngineUnavailableError(
        f"The vLLM engine of '{card_id}' failed while answering; it is being restarted. Retry.",
        code="model_restarting",
    )
