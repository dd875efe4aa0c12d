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
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from mmserve.chatformat.templates import template_tool_calls
from mmserve.engines.base import ChatEngine, EngineOptions
from mmserve.engines.registry import require
from mmserve.engines.transformers_chat.audio_input import resample
from mmserve.engines.transformers_chat.constrained import GrammarCompiler
from mmserve.engines.transformers_chat.hooks import ProcessorFactory, ProcessorTarget, load_processor_factories
from mmserve.engines.transformers_chat.image_input import (
    processor_input_size,
    refuse_placeholder_tokens,
    video_share,
)
from mmserve.engines.transformers_chat.logprobs import LogprobEntries
from mmserve.engines.transformers_chat.sampling import SeededSampler
from mmserve.engines.transformers_chat.streamer import GenerationStream
from mmserve.engines.types import ChatDelta, ChatInput, ChatMessage
from mmserve.errors import ContextLengthError, EngineError, InvalidRequestError
from mmserve.media.image.decode import ImageInputSize

log = logging.getLogger("mmserve.engines.transformers_chat.engine")


class TransformersChatOptions(EngineOptions):
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    chat_template: str | None = Field(default=None, description="Jinja template overriding the model's.")
    model_class: Literal["auto", "image-text-to-text", "multimodal-lm", "causal-lm"] = Field(
        default="auto",
        description="auto: image-text-to-text with a vision_config, multimodal-lm with an audio_config "
        "(AutoModelForMultimodalLM: Qwen2-Audio...), else causal-lm.",
    )
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
    video_tokens: int = 0  # of image_tokens, those of video frames
    audio_tokens: int = 0


class TransformersChatEngine(ChatEngine):
    Options = TransformersChatOptions
    options: TransformersChatOptions
    supports_logprobs = True
    supports_ignore_eos = True

    model: Any = None
    processor: Any = None  # a processor (VLM) or a tokenizer (text-only)
    tokenizer: Any = None
    vision: bool = False
    audio: bool = False  # hears audio parts (an audio_config and a processor with a feature extractor)
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
            AutoModelForMultimodalLM,
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
            kind = "multimodal-lm" if hasattr(config, "audio_config") else kind
        self.vision = hasattr(config, "vision_config") and kind != "causal-lm"
        self.audio = hasattr(config, "audio_config") and kind != "causal-lm"
        if kind != "causal-lm":
            auto = AutoModelForImageTextToText if kind == "image-text-to-text" else AutoModelForMultimodalLM
            self.model = from_pretrained(auto, self.source, device=self.device, dtype=opts.dtype, trust_remote_code=trc)
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
        stream = GenerationStream(
            self.tokenizer,
            self._eos,
            request,
            prepared.max_new_tokens,
            loop,
            queue,
            sampler=SeededSampler(request.params, self.model.device, prompt_len=prepared.prompt_tokens),
            entries=self._logprobs if request.params.logprobs else None,
        )
        loop.run_in_executor(self._pool, self._run, prepared, stream)
        try:
            yield ChatDelta(
                prompt_tokens=prepared.prompt_tokens,
                prompt_text=prepared.prompt,
                image_tokens=prepared.image_tokens,
                video_tokens=prepared.video_tokens,
                audio_tokens=prepared.audio_tokens,
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
        messages, images, audios = self._template_messages(request.messages)
        if images and not self.vision:
            raise InvalidRequestError(f"The model '{self.card.id}' does not accept images.", param="messages")
        if audios and not self.audio:
            raise InvalidRequestError(f"The model '{self.card.id}' does not hear audio.", param="messages")
        if self.vision or self.audio:
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
        if self.vision or self.audio:
            kwargs: dict[str, Any] = {"images": images or None} if self.vision else {}
            if audios:
                rate = int(self.processor.feature_extractor.sampling_rate)
                kwargs.update(audio=[resample(a, rate) for a in audios], sampling_rate=rate)
            inputs = self.processor(text=[prompt], return_tensors="pt", **kwargs)
        else:
            inputs = self.processor([prompt], return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(self.model.device)
        for key in ("pixel_values", "input_features"):
            if key in inputs:
                inputs[key] = inputs[key].to(self.model.dtype)
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
        # in the order of `images`: which are video frames
        frames = [
            p.video is not None
            for m in request.messages
            if not isinstance(m.content, str)
            for p in m.content
            if p.type == "image"
        ]
        video_tokens = video_share(self.processor, images, frames, image_tokens) if any(frames) else 0
        audio_token_id = getattr(self.processor, "audio_token_id", None) if self.audio else None
        audio_tokens = int((inputs["input_ids"] == audio_token_id).sum()) if audio_token_id is not None else 0
        return _Prepared(inputs, prompt_tokens, max_new, prompt, processors, image_tokens, video_tokens, audio_tokens)

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

    def _template_messages(
        self, messages: list[ChatMessage]
    ) -> tuple[list[dict[str, Any]], list[Any], list[tuple[Any, int]]]:
        """The messages as chat templates take them, and their images and (samples, rate) audio clips, in order."""
        out: list[dict[str, Any]] = []
        images: list[Any] = []
        audios: list[tuple[Any, int]] = []
        for m in messages:
            entry: dict[str, Any] = {"role": m.role}
            if isinstance(m.content, str):
                entry["content"] = m.content
            elif self.vision or self.audio:
                parts: list[dict[str, Any]] = []
                for p in m.content:
                    if p.type == "image":
                        parts.append({"type": "image"})
                        images.append(p.image)
                    elif p.type == "audio":
                        parts.append({"type": "audio"})
                        audios.append((p.audio, p.sample_rate))
                    else:
                        parts.append({"type": "text", "text": p.text})
                entry["content"] = parts
            else:  # text-only templates expect strings
                images.extend(None for p in m.content if p.type == "image")
                audios.extend((None, 0) for p in m.content if p.type == "audio")
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
        return out, images, audios

    def _run(self, prepared: _Prepared, stream: GenerationStream) -> None:
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
