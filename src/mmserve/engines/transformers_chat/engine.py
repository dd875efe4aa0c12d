"""Chat on any transformers vision-language model (AutoModelForImageTextToText) or causal LM, batched.

The prompt is built with the model's own chat template and processor, so
``prompt_tokens`` counts exactly the image tokens the processor expands images into.
Requests are prepared (template, tokenizer, image processor, grammar) in a small thread
pool, then join the replica's continuous batch (:mod:`.scheduler`): one decode loop per
replica, new requests prefilled and joining between decode steps, finished ones leaving at
once. Each row keeps its own seeded sampler, logits processors and grammar, stop strings,
``max_tokens``, stream and cancellation.

Why our own loop on the model's forward, and not transformers 5's
``ContinuousBatchingManager``: the manager takes token ids only (no pixel values, so no
image requests), applies one generation config to every request (no per-request logits
processors, hence no per-request grammar, hooks or seeded sampler), and runs on its own
paged cache whose attention kernels cover fewer architectures than ``DynamicCache``. The
loop here calls the model's own forward with a left-padded ``DynamicCache``
(:mod:`.batch`), which every decoder in transformers accepts; models whose cache layers or
rotary positions cannot be padded that way decode one row at a time.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mmserve.engines.base import ChatEngine, EngineOptions
from mmserve.engines.common.torch_utils import cuda_available
from mmserve.engines.registry import import_names, require
from mmserve.engines.transformers_chat.batch import batchable, sdpa_masks
from mmserve.engines.transformers_chat.constrained import GrammarCompiler
from mmserve.engines.transformers_chat.hooks import ProcessorFactory, load_processor_factories
from mmserve.engines.transformers_chat.image_input import processor_input_size, video_share
from mmserve.engines.transformers_chat.logprobs import LogprobEntries
from mmserve.engines.transformers_chat.options import CPU_BATCH, GPU_BATCH, TransformersChatOptions
from mmserve.engines.transformers_chat.prompt import max_new_tokens, render
from mmserve.engines.transformers_chat.raw_prompt import media_token_ids, raw_prompt_inputs
from mmserve.engines.transformers_chat.row import Prepared, Row, merged_delta
from mmserve.engines.transformers_chat.scheduler import DecodeLoop
from mmserve.engines.transformers_chat.textstream import fast_decoder
from mmserve.engines.transformers_chat.typed_specials import TypedSpecials
from mmserve.engines.types import ChatDelta, ChatInput
from mmserve.errors import EngineError
from mmserve.media.image.decode import ImageInputSize

log = logging.getLogger("mmserve.engines.transformers_chat.engine")

PREPARE_THREADS = 2  # templates, tokenizers and image processors, off the decode loop


class _SuppressMask:
    """The model's suppressed tokens as one precomputed mask, applied to every row of the batch at once."""

    def __init__(self, tokens: Any, vocab: int, device: Any) -> None:
        import torch

        self.mask = torch.isin(torch.arange(vocab, device=device), tokens.to(device))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return scores.masked_fill(self.mask[: scores.shape[-1]], float("-inf"))


class TransformersChatEngine(ChatEngine):
    Options = TransformersChatOptions
    raw_prompts = True
    options: TransformersChatOptions
    supports_logprobs = True
    supports_ignore_eos = True
    uses_torch = True

    model: Any = None
    processor: Any = None  # a processor (VLM) or a tokenizer (text-only)
    tokenizer: Any = None
    vision: bool = False
    audio: bool = False  # hears audio parts (an audio_config and a processor with a feature extractor)
    _context: int | None = None
    _pool: ThreadPoolExecutor | None = None
    _loop: DecodeLoop | None = None
    _grammars: GrammarCompiler | None = None
    _hooks: list[ProcessorFactory] = []
    _logprobs: LogprobEntries | None = None
    _decoder: Any = None  # ids -> text (see fast_decoder)
    _typed: TypedSpecials | None = None
    _row_model_processors = False  # the model's own processors depend on the row (built per request)

    @classmethod
    def batch_limits(cls, options: EngineOptions, device: str) -> tuple[int, int]:
        """(max_batch_size, max_batch_tokens): the card's, or the defaults for ``device``."""
        assert isinstance(options, TransformersChatOptions)
        size, tokens = GPU_BATCH if _on_gpu(device) else CPU_BATCH
        return options.max_batch_size or size, options.max_batch_tokens or tokens

    @classmethod
    def default_concurrency(cls, options: EngineOptions, device: str) -> int:
        return cls.batch_limits(options, device)[0]

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def import_libraries(cls, options: EngineOptions) -> None:
        import_names(
            "transformers", "AutoConfig", "AutoModelForCausalLM", "AutoModelForImageTextToText", "AutoProcessor"
        )

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
        autos = {"image-text-to-text": AutoModelForImageTextToText, "multimodal-lm": AutoModelForMultimodalLM}
        auto = autos.get(kind, AutoModelForCausalLM)
        self.model = from_pretrained(auto, self.source, device=self.device, dtype=opts.dtype, trust_remote_code=trc)
        if kind != "causal-lm":
            self.processor = AutoProcessor.from_pretrained(self.source, trust_remote_code=trc)
            self.tokenizer = self.processor.tokenizer
        else:
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
        self._hooks = load_processor_factories(opts.logits_processors, model=self.card.id)
        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        self._grammars = GrammarCompiler(self.tokenizer, vocab, self._eos)
        self._logprobs = LogprobEntries(self._grammars.token_bytes)
        self._decoder = fast_decoder(self.tokenizer)
        self._typed = TypedSpecials(self.tokenizer, self.processor if self.vision or self.audio else None)
        torch.set_grad_enabled(False)
        self._start_loop(vocab)

    def _start_loop(self, vocab: int) -> None:
        from transformers import DynamicCache, SuppressTokensLogitsProcessor

        # The model's own generation config (suppressed tokens, ...) minus its sampling
        # defaults: the request's parameters rule, and the row's sampler does the sampling.
        # Its min_new_tokens is applied by the decode loop to all rows at once.
        self._gen_config = copy.deepcopy(self.model.generation_config)
        self._gen_config.update(
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
        )
        own = self._model_processors(1)
        if all(isinstance(p, SuppressTokensLogitsProcessor) for p in own):
            batch_processors: list[Any] = [_SuppressMask(p.suppress_tokens, vocab, self.model.device) for p in own]
            self._row_model_processors = False
        else:  # processors that read the row's tokens (no_repeat_ngram_size, ...): made for each request
            batch_processors = []
            self._row_model_processors = True
        size, tokens = self.batch_limits(self.options, self.device)
        can_batch = batchable(self.model)
        if not can_batch and size > 1:
            log.info("model '%s' decodes one request at a time (its cache cannot be batched)", self.card.id)
        model_config = self.model.config
        self._pool = ThreadPoolExecutor(max_workers=PREPARE_THREADS, thread_name_prefix=f"chat-prep-{self.card.id}")
        new_cache = lambda: DynamicCache(config=model_config)  # noqa: E731
        self._loop = DecodeLoop(
            self.model,
            new_cache=new_cache,
            batch_processors=batch_processors,
            max_batch_size=size if can_batch else 1,
            max_batch_tokens=tokens,
            positions=can_batch,
            pad_id=self._pad_id(),
            name=f"chat-decode-{self.card.id}",
            sdpa_mask=can_batch and sdpa_masks(self.model, new_cache, self._pad_id()),
            min_new_tokens=int(self.model.generation_config.min_new_tokens or 0),
            eos=tuple(self._eos),
        )

    def _pad_id(self) -> int:
        """A token that fills the left of shorter prompts in a batched prefill (masked): never an image slot."""
        reserved = {getattr(self.processor, "image_token_id", None)}
        for candidate in (self.tokenizer.pad_token_id, *self._eos, 0):
            if candidate is not None and candidate not in reserved:
                return int(candidate)
        return 0

    def _model_processors(self, prompt_len: int) -> list[Any]:
        # What generate() would apply from the model's generation config: the same private
        # helper generate() calls, so that every option it knows is honoured.
        made = self.model._get_logits_processor(
            generation_config=self._gen_config,
            input_ids_seq_length=prompt_len,
            encoder_input_ids=None,
            device=str(self.model.device),
        )
        return list(made)

    def unload(self) -> None:
        from mmserve.engines.common.torch_utils import release_memory

        if self._loop is not None:
            self._loop.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.model = self.processor = self.tokenizer = self._pool = self._loop = self._grammars = None
        release_memory()

    def memory_bytes(self) -> int | None:
        from mmserve.engines.common.torch_utils import module_bytes

        return module_bytes(self.model) if self.model is not None else None

    def batch_size(self) -> int | None:
        loop = self._loop
        return loop.running if loop is not None else None

    def context_length(self) -> int | None:
        return self._context

    def image_input_size(self) -> ImageInputSize | None:
        declared = super().image_input_size()
        if declared is not None or not self.vision or self.processor is None:
            return declared
        return processor_input_size(getattr(self.processor, "image_processor", None))

    # ------------------------------------------------------------------ generation

    async def generate(self, request: ChatInput) -> AsyncGenerator[ChatDelta, None]:
        pool, decode_loop = self._pool, self._loop
        if self.model is None or pool is None or decode_loop is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        # The prep thread hands the row to the decode loop itself: a busy event loop (many
        # streams) would otherwise hold the prepared row back until it came round to it, and
        # the time to first token with it. Should the consumer leave meanwhile, the row is
        # cancelled whichever side sees it first (the thread stores the row, then reads
        # ``left``; this side sets ``left``, then reads the row).
        made: list[Row] = []
        left = False

        def prepare() -> Row:
            row = self._row(request, decode_loop.outbox.sender(loop, queue))
            made.append(row)
            if left:
                row.cancel()
            decode_loop.submit(row)
            return row

        try:
            row = await loop.run_in_executor(pool, prepare)
        except BaseException:
            left = True
            for r in made:
                r.cancel()
            raise
        try:
            p = row.prepared
            yield ChatDelta(
                prompt_tokens=p.prompt_tokens,
                prompt_text=p.prompt,
                image_tokens=p.image_tokens,
                video_tokens=p.video_tokens,
                audio_tokens=p.audio_tokens,
            )
            # A consumer slower than the decoder (a busy event loop) gets the tokens that are waiting
            # in one delta: fewer events to encode and send. Not for a reasoning model: its
            # reasoning tokens are counted up to the delta that ends the trace.
            together = not self.card.capabilities.reasoning_format
            while True:
                items = [await queue.get()]
                while together and not queue.empty():
                    items.append(queue.get_nowait())
                # A failure ends the row: the tokens sent before it are delivered first, as they
                # would be to a consumer that kept up.
                failed = next((i for i, item in enumerate(items) if isinstance(item, BaseException)), None)
                outs = items if failed is None else items[:failed]
                if outs:
                    delta = merged_delta(outs)
                    yield delta
                    if delta.finish_reason:
                        return
                if failed is not None:
                    raise EngineError(f"generation failed in '{self.card.id}'") from items[failed]
        finally:
            row.cancel()  # the consumer went away (or the row ended): the loop drops it

    def _row(self, request: ChatInput, send: Any) -> Row:
        """Prepare one request (in the pool): template, tokens, image features' inputs, processors."""
        prepared = self._prepare(request)
        return Row(
            prepared,
            request.params,
            eos=self._eos,
            decode=self._decode,
            entries=self._logprobs,
            send=send,
            device=self.model.device,
        )

    def _decode(self, ids: Sequence[int]) -> str:
        text: str = self._decoder(ids, skip_special_tokens=True)
        return text

    def _prepare(self, request: ChatInput) -> Prepared:
        raw = request.prompt
        if raw is not None:  # legacy completions: the prompt as given, no chat template
            reserved = media_token_ids(self.processor) if self.vision else {}
            vocab = int(self.model.get_input_embeddings().weight.shape[0])
            prompt, inputs = raw_prompt_inputs(self.tokenizer, raw, vocab=vocab, reserved=reserved)
            images: list[Any] = []
        else:
            escaping = self._typed if self.options.user_special_tokens == "escape" else None
            prompt, inputs, images = render(
                self.processor, request, model=self.card.id, vision=self.vision, audio=self.audio, escaping=escaping
            )
        inputs = inputs.to(self.model.device)
        for key in ("pixel_values", "input_features"):
            if key in inputs:
                inputs[key] = inputs[key].to(self.model.dtype)
        prompt_ids = inputs["input_ids"][0].tolist()
        limit = self.card.limits.max_output_tokens
        max_new = max_new_tokens(self._context, len(prompt_ids), request.params.max_tokens, limit, raw=raw)
        processors = self._model_processors(len(prompt_ids)) if self._row_model_processors else []
        processors += [hook(self.tokenizer, prompt_ids) for hook in self._hooks]
        if request.constraint is not None and self._grammars is not None:
            processors.append(self._grammars.processor(request.constraint, prompt, len(prompt_ids)))
        image_tokens = 0
        image_token_id = getattr(self.processor, "image_token_id", None) if self.vision else None
        if image_token_id is not None:
            image_tokens = prompt_ids.count(image_token_id)
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
        audio_tokens = prompt_ids.count(audio_token_id) if audio_token_id is not None else 0
        return Prepared(inputs, prompt_ids, max_new, prompt, processors, image_tokens, video_tokens, audio_tokens)


def _on_gpu(device: str) -> bool:
    if device == "auto":
        return cuda_available()
    return device.startswith("cuda")
