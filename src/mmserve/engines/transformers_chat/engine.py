"""Chat on any transformers vision-language model (AutoModelForImageTextToText) or causal LM.

The prompt is built with the model's own chat template and processor, so
``prompt_tokens`` counts exactly the image tokens the processor expands images into.
Generation runs in a worker thread per request and streams token by token through an
asyncio queue. Sampling is done by a per-request seeded sampler (:mod:`mmserve.engines.transformers_chat.sampling`),
so concurrent requests with a ``seed`` are reproducible without a global torch seed.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from mmserve.chatformat.templates import template_tool_calls
from mmserve.engines.base import ChatEngine, EngineOptions
from mmserve.engines.registry import require
from mmserve.engines.transformers_chat.constrained import GrammarCompiler
from mmserve.engines.transformers_chat.hooks import ProcessorFactory, ProcessorTarget, load_processor_factories
from mmserve.engines.transformers_chat.image_input import processor_input_size, refuse_placeholder_tokens
from mmserve.engines.transformers_chat.logprobs import LogprobEntries
from mmserve.engines.transformers_chat.sampling import SeededSampler
from mmserve.engines.transformers_chat.textstream import IncrementalDetokenizer, StopMatcher
from mmserve.engines.types import ChatDelta, ChatInput, ChatMessage, TokenLogprob
from mmserve.errors import ContextLengthError, EngineError, InvalidRequestError
from mmserve.media.image.decode import ImageInputSize

log = logging.getLogger("mmserve.engines.transformers_chat.engine")


class TransformersChatOptions(EngineOptions):
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    chat_template: str | None = Field(default=None, description="Jinja template overriding the model's.")
    model_class: Literal["auto", "image-text-to-text", "causal-lm"] = "auto"
    logits_processors: list[ProcessorTarget] = Field(
        default_factory=list,
        description="Extra logits processors, 'package.module:factory' (see mmserve.engines.transformers_chat.hooks), "
        "run before constrained decoding and sampling: e.g. to ban words or to script a test model's output.",
    )
    parallel_generations: int = Field(
        default=1,
        ge=1,
        description="Generations run at once in worker threads. Measured on a 2-core CPU (benchmarks/chat.py): "
        "4 threads gave half the throughput of 1 (GIL and intra-op thread contention), so requests queue "
        "for one generation thread by default.",
    )


@dataclass
class _Prepared:
    inputs: Any  # BatchEncoding on the model's device
    prompt_tokens: int
    max_new_tokens: int
    prompt: str = ""
    processors: list[Any] = field(default_factory=list)  # before the sampler: card hooks, then the grammar
    image_tokens: int = 0


class TransformersChatEngine(ChatEngine):
    Options = TransformersChatOptions
    options: TransformersChatOptions
    supports_logprobs = True
    supports_ignore_eos = True

    model: Any = None
    processor: Any = None  # a processor (VLM) or a tokenizer (text-only)
    tokenizer: Any = None
    vision: bool = False
    _context: int | None = None
    _pool: ThreadPoolExecutor | None = None
    _grammars: GrammarCompiler | None = None
    _hooks: list[ProcessorFactory] = []
    _logprobs: LogprobEntries | None = None

    @classmethod
    def check_request(cls, options: EngineOptions, request: ChatInput) -> None:
        super().check_request(options, request)
        if request.params.ignore_eos and request.constraint is not None:
            raise InvalidRequestError(
                "ignore_eos cannot be combined with an enforced output format (response_format json_schema or "
                "json_object, tool_choice required or named): the format ends the answer. Remove one of them.",
                param="ignore_eos",
            )

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        require("transformers", self.card.engine)
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )

        from mmserve.engines.common.torch_utils import from_pretrained, resolve_device

        if self.source is None:
            raise EngineError(f"Model '{self.card.id}' has no source.")
        opts = self.options
        self.device = resolve_device(self.device)
        trc = opts.trust_remote_code
        config = AutoConfig.from_pretrained(self.source, trust_remote_code=trc)
        kind = opts.model_class
        if kind == "auto":
            kind = "image-text-to-text" if hasattr(config, "vision_config") else "causal-lm"
        self.vision = kind == "image-text-to-text"
        if self.vision:
            self.model = from_pretrained(
                AutoModelForImageTextToText, self.source, device=self.device, dtype=opts.dtype, trust_remote_code=trc
            )
            self.processor = AutoProcessor.from_pretrained(self.source, trust_remote_code=trc)
            self.tokenizer = self.processor.tokenizer
        else:
            self.model = from_pretrained(
                AutoModelForCausalLM, self.source, device=self.device, dtype=opts.dtype, trust_remote_code=trc
            )
            self.processor = self.tokenizer = AutoTokenizer.from_pretrained(self.source, trust_remote_code=trc)
        if opts.chat_template:
            self.processor.chat_template = opts.chat_template
        text_config = getattr(config, "text_config", config)
        self._context = self.card.capabilities.context_length or getattr(text_config, "max_position_embeddings", None)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self._eos = sorted(eos_ids)
        self._pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._eos[0]
        self._pool = ThreadPoolExecutor(
            max_workers=opts.parallel_generations, thread_name_prefix=f"chat-{self.card.id}"
        )
        self._hooks = load_processor_factories(opts.logits_processors, model=self.card.id)
        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        self._grammars = GrammarCompiler(self.tokenizer, vocab, self._eos)
        self._logprobs = LogprobEntries(self._grammars.token_bytes)
        torch.set_grad_enabled(False)

    def unload(self) -> None:
        from mmserve.engines.common.torch_utils import release_memory

        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.model = self.processor = self.tokenizer = self._pool = self._grammars = None
        release_memory()

    def memory_bytes(self) -> int | None:
        from mmserve.engines.common.torch_utils import module_bytes

        return module_bytes(self.model) if self.model is not None else None

    def context_length(self) -> int | None:
        return self._context

    def image_input_size(self) -> ImageInputSize | None:
        declared = super().image_input_size()
        if declared is not None or not self.vision or self.processor is None:
            return declared
        return processor_input_size(getattr(self.processor, "image_processor", None))

    # ------------------------------------------------------------------ generation

    async def generate(self, request: ChatInput) -> AsyncGenerator[ChatDelta, None]:
        if self.model is None or self._pool is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(self._pool, self._prepare, request)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stream = _Stream(self, request, prepared, loop, queue)
        loop.run_in_executor(self._pool, self._run, prepared, stream)
        try:
            yield ChatDelta(
                prompt_tokens=prepared.prompt_tokens, prompt_text=prepared.prompt, image_tokens=prepared.image_tokens
            )
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise EngineError(f"generation failed in '{self.card.id}'") from item
                if item is None:
                    yield ChatDelta(
                        text=stream.tail,
                        finish_reason=stream.finish_reason,
                        completion_tokens=stream.count,
                        logprobs=stream.take_logprobs(),
                    )
                    return
                text, count, logprobs = item
                yield ChatDelta(text=text, completion_tokens=count, logprobs=logprobs)
        finally:
            stream.cancelled.set()  # the consumer went away: stop generating

    def _prepare(self, request: ChatInput) -> _Prepared:
        messages, images = self._template_messages(request.messages)
        if images and not self.vision:
            raise InvalidRequestError(f"The model '{self.card.id}' does not accept images.", param="messages")
        if self.vision:
            refuse_placeholder_tokens(request.messages, self.processor)
        try:
            prompt = self.processor.apply_chat_template(
                messages,
                tools=request.tools,
                add_generation_prompt=True,
                tokenize=False,
                **request.extra.get("chat_template_kwargs", {}),
            )
        except Exception as e:  # jinja2 TemplateError: the template's own message is for users
            if type(e).__module__.startswith("jinja2"):
                raise InvalidRequestError(
                    f"The model's chat template refused the conversation: {e}", param="messages"
                ) from None
            raise
        if self.vision:
            inputs = self.processor(text=[prompt], images=images or None, return_tensors="pt")
        else:
            inputs = self.processor([prompt], return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        max_new = self._max_new_tokens(prompt_tokens, request.params.max_tokens)
        processors = []
        if self._hooks:
            prompt_ids = inputs["input_ids"][0].tolist()
            processors = [hook(self.tokenizer, prompt_ids) for hook in self._hooks]
        if request.constraint is not None and self._grammars is not None:
            processors.append(self._grammars.processor(request.constraint, prompt, prompt_tokens))
        image_tokens = 0
        image_token_id = getattr(self.processor, "image_token_id", None) if self.vision else None
        if image_token_id is not None:
            image_tokens = int((inputs["input_ids"] == image_token_id).sum())
        return _Prepared(inputs, prompt_tokens, max_new, prompt, processors, image_tokens)

    def _max_new_tokens(self, prompt_tokens: int, requested: int | None) -> int:
        ctx = self._context
        room = (ctx - prompt_tokens) if ctx else None
        if room is not None and room <= 0:
            raise ContextLengthError(
                f"The prompt is {prompt_tokens} tokens, more than the model's context of {ctx} tokens. "
                "Shorten the messages or send fewer images.",
                param="messages",
            )
        if requested is None:
            limit = self.card.limits.max_output_tokens
            return min(limit, room) if room is not None else limit
        if room is not None and requested > room:
            raise ContextLengthError(
                f"The prompt ({prompt_tokens} tokens) plus max_tokens ({requested}) exceeds the model's "
                f"context of {ctx} tokens. Lower max_tokens to at most {room}.",
                param="max_tokens",
            )
        return requested

    def _template_messages(self, messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], list[Any]]:
        out: list[dict[str, Any]] = []
        images: list[Any] = []
        for m in messages:
            entry: dict[str, Any] = {"role": m.role}
            if isinstance(m.content, str):
                entry["content"] = m.content
            elif self.vision:
                parts: list[dict[str, Any]] = []
                for p in m.content:
                    if p.type == "image":
                        parts.append({"type": "image"})
                        images.append(p.image)
                    else:
                        parts.append({"type": "text", "text": p.text})
                entry["content"] = parts
            else:  # text-only templates expect strings
                if any(p.type == "image" for p in m.content):
                    images.append(None)
                entry["content"] = "".join(p.text for p in m.content if p.type == "text")
            if m.name:
                entry["name"] = m.name
            if m.tool_calls:
                entry["tool_calls"] = template_tool_calls(m.tool_calls)
            if m.reasoning_content:
                entry["reasoning_content"] = m.reasoning_content
            if m.tool_call_id:
                entry["tool_call_id"] = m.tool_call_id
            out.append(entry)
        return out, images

    def _run(self, prepared: _Prepared, stream: _Stream) -> None:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        try:
            params = stream.request.params
            # The model's own generation config (suppressed tokens, ...) minus its sampling
            # defaults: the request's parameters rule, and SeededSampler does the sampling.
            config = copy.deepcopy(self.model.generation_config)
            config.update(
                max_new_tokens=prepared.max_new_tokens,
                max_length=None,
                min_new_tokens=None,
                min_length=0,
                do_sample=False,
                num_beams=1,
                num_return_sequences=1,
                temperature=None,
                top_p=None,
                top_k=None,
                repetition_penalty=None,
                eos_token_id=[] if params.ignore_eos else self._eos,  # None would mean "the model's"
                pad_token_id=self._pad,
            )
            sampler = stream.sampler
            with torch.inference_mode():
                self.model.generate(
                    **prepared.inputs,
                    generation_config=config,
                    logits_processor=LogitsProcessorList([*prepared.processors, sampler]),
                    stopping_criteria=StoppingCriteriaList([stream]),
                    streamer=stream,
                )
            stream.finish()
        except BaseException as e:
            stream.fail(e)


class _Stream:
    """Streamer + stopping criterion for one generate() call, run in the worker thread.

    Detokenizes and applies stop strings in the worker, and hands text deltas to the
    event loop through ``call_soon_threadsafe``. ``cancelled`` stops generation at the next
    step (client gone); a stop string or EOS stops it too.
    """

    def __init__(
        self,
        engine: TransformersChatEngine,
        request: ChatInput,
        prepared: _Prepared,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
    ) -> None:
        self.request = request
        self.loop, self.queue = loop, queue
        self.cancelled = threading.Event()
        tok = engine.tokenizer
        self.detok = IncrementalDetokenizer(lambda ids: tok.decode(ids, skip_special_tokens=True))
        self.stops = StopMatcher(request.params.stop)
        self.eos = set() if request.params.ignore_eos else set(engine._eos)
        self.sampler = SeededSampler(request.params, engine.model.device, prompt_len=prepared.prompt_tokens)
        self.entries = engine._logprobs if request.params.logprobs else None
        self.top = request.params.top_logprobs
        self.pending: list[TokenLogprob] = []
        self.max_new = prepared.max_new_tokens
        self.count = 0
        self.eos_hit = False
        self.tail = ""
        self._prompt_seen = False

    # BaseStreamer protocol
    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt ids
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            if self.eos_hit or self.stops.stopped:
                return
            self.count += 1
            if token in self.eos:
                self.eos_hit = True
                return
            if self.entries is not None and self.sampler.last_logprobs is not None:
                self.pending.append(self.entries.entry(self.sampler.last_logprobs, token, self.top))
            text = self.stops.push(self.detok.push(token))
            if text:
                self._send((text, self.count, self.take_logprobs()))

    def take_logprobs(self) -> list[TokenLogprob] | None:
        """The entries not sent yet (None when the request did not ask for them)."""
        if self.entries is None:
            return None
        out, self.pending = self.pending, []
        return out

    def end(self) -> None:
        self.tail = self.stops.push(self.detok.flush()) + self.stops.flush()

    # StoppingCriteria protocol
    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = self.cancelled.is_set() or self.stops.stopped or self.eos_hit
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    @property
    def finish_reason(self) -> str:
        if self.eos_hit or self.stops.stopped:
            return "stop"
        return "length" if self.count >= self.max_new else "stop"

    def finish(self) -> None:
        self._send(None)

    def fail(self, exc: BaseException) -> None:
        self._send(exc)

    def _send(self, item: Any) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
