"""Embeddings from transformers models: text encoders (BERT, E5, BGE, GTE, ... pooled) and
CLIP-style dual encoders (CLIP, SigLIP: text and images in one space).

- Text encoders (``AutoModel``): the last hidden state pooled by ``options.pooling``: ``mean``
  (mean of the non-padding tokens), ``cls`` (the first token) or ``last`` (the last
  non-padding token, for decoder-based embedders). ``auto`` reads a sentence-transformers
  export's ``1_Pooling/config.json`` and falls back to ``mean``.
- Dual encoders (a config with ``text_config`` and ``vision_config``): ``get_text_features``
  and ``get_image_features``, so a caption and its picture land near each other.

Vectors are L2-normalised (``options.normalize``). A request's ``dimensions`` keeps the first
N values and renormalises (cards allow it with ``capabilities.matryoshka``).

Inputs are tokenized without truncation: an input longer than the model takes is refused
(a 400 naming it), never silently cut. Token-id inputs get the tokenizer's special tokens
around them, as text would.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import Field

from mmserve.engines.base import EmbeddingEngine, EngineOptions
from mmserve.engines.registry import import_names, require
from mmserve.engines.transformers_chat.image_input import processor_input_size
from mmserve.engines.types import EmbeddingInput, EmbeddingItem, EmbeddingOutput
from mmserve.errors import ContextLengthError, EngineError, InvalidRequestError
from mmserve.media.image.decode import ImageInputSize

Pooling = Literal["mean", "cls", "last"]
# tokenizers report "no limit" as a huge number; a real model's limit is below this
_NO_LIMIT = 1_000_000


class TransformersEmbeddingOptions(EngineOptions):
    model_class: Literal["auto", "text-encoder", "clip"] = Field(
        default="auto", description="auto: 'clip' when the config has text and vision towers, else 'text-encoder'."
    )
    pooling: Literal["auto", "mean", "cls", "last"] = Field(
        default="auto", description="Text encoders: auto reads sentence-transformers' 1_Pooling/config.json, else mean."
    )
    normalize: bool = Field(default=True, description="L2-normalise every vector (cosine = dot product).")
    max_length: int | None = Field(default=None, gt=0, description="Tokens per input; default: the model's.")
    batch_size: int = Field(default=32, ge=1, description="Inputs per forward pass.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False


class TransformersEmbeddingEngine(EmbeddingEngine):
    Options = TransformersEmbeddingOptions
    options: TransformersEmbeddingOptions
    uses_torch = True

    model: Any = None
    tokenizer: Any = None
    image_processor: Any = None  # dual encoders only
    dual: bool = False
    pooling: Pooling = "mean"
    max_length: int = 512
    _dims: int | None = None
    _vocab: int = 0
    _specials: tuple[list[int], list[int]] = ([], [])
    _pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def import_libraries(cls, options: EngineOptions) -> None:
        import_names("transformers", "AutoConfig", "AutoModel", "AutoProcessor", "AutoTokenizer")

    def load(self) -> None:
        require("transformers", self.card.engine)
        import torch
        from transformers import AutoConfig, AutoModel, AutoProcessor, AutoTokenizer

        from mmserve.engines.common.torch_utils import from_pretrained, resolve_device

        if self.source is None:
            raise EngineError(f"Model '{self.card.id}' has no source.")
        opts = self.options
        self.device = resolve_device(self.device)
        trc = opts.trust_remote_code
        config = AutoConfig.from_pretrained(self.source, trust_remote_code=trc)
        kind = opts.model_class
        if kind == "auto":
            kind = "clip" if hasattr(config, "vision_config") and hasattr(config, "text_config") else "text-encoder"
        self.dual = kind == "clip"
        self.model = from_pretrained(
            AutoModel, self.source, device=self.device, dtype=opts.dtype, trust_remote_code=trc
        )
        if self.dual:
            processor = AutoProcessor.from_pretrained(self.source, trust_remote_code=trc)
            self.tokenizer, self.image_processor = processor.tokenizer, processor.image_processor
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source, trust_remote_code=trc)
        text_config = getattr(config, "text_config", config)
        self._dims = self.card.capabilities.embedding_dimensions or (
            getattr(config, "projection_dim", None) if self.dual else getattr(text_config, "hidden_size", None)
        )
        self.max_length = self._max_length(text_config)
        self.pooling = self._pooling()
        self._vocab = int(self.model.get_input_embeddings().weight.shape[0]) if not self.dual else len(self.tokenizer)
        self._specials = _special_affixes(self.tokenizer)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{self.card.id}")
        torch.set_grad_enabled(False)

    def _max_length(self, text_config: Any) -> int:
        candidates = [
            self.options.max_length,
            self.card.capabilities.context_length,
            getattr(self.tokenizer, "model_max_length", None),
            getattr(text_config, "max_position_embeddings", None),
        ]
        known = [int(c) for c in candidates[2:] if isinstance(c, int) and 0 < c < _NO_LIMIT]
        for explicit in candidates[:2]:
            if explicit:
                return min([explicit, *known])
        return min(known) if known else 512

    def _pooling(self) -> Pooling:
        if self.options.pooling != "auto":
            return self.options.pooling
        assert self.source is not None
        config = self.source / "1_Pooling" / "config.json"  # sentence-transformers exports say how they pool
        if config.is_file():
            modes = json.loads(config.read_text())
            for key, mode in (("pooling_mode_cls_token", "cls"), ("pooling_mode_lasttoken", "last")):
                if modes.get(key):
                    return mode  # type: ignore[return-value]
        return "mean"

    def unload(self) -> None:
        from mmserve.engines.common.torch_utils import release_memory

        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.model = self.tokenizer = self.image_processor = self._pool = None
        release_memory()

    def memory_bytes(self) -> int | None:
        from mmserve.engines.common.torch_utils import module_bytes

        return module_bytes(self.model) if self.model is not None else None

    def dimensions(self) -> int | None:
        return self._dims

    def image_input_size(self) -> ImageInputSize | None:
        declared = super().image_input_size()
        if declared is not None or self.image_processor is None:
            return declared
        return processor_input_size(self.image_processor)

    # ------------------------------------------------------------------ embedding

    async def embed(self, request: EmbeddingInput) -> EmbeddingOutput:
        if self.model is None or self._pool is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._embed, request)

    def _embed(self, request: EmbeddingInput) -> EmbeddingOutput:
        import numpy as np
        import torch

        texts: list[tuple[int, list[int]]] = []
        images: list[tuple[int, Any]] = []
        for i, item in enumerate(request.items):
            if item.image is not None:
                if not self.dual:
                    raise InvalidRequestError(
                        f"The model '{self.card.id}' embeds text only; '{item.param}' is an image.", param=item.param
                    )
                images.append((i, item.image))
            else:
                texts.append((i, self._token_ids(item)))
        vectors: list[Any] = [None] * len(request.items)
        texts.sort(key=lambda t: len(t[1]))  # similar lengths share a batch: less padding
        size = self.options.batch_size
        with torch.inference_mode():
            for start in range(0, len(texts), size):
                batch = texts[start : start + size]
                for (i, _), vec in zip(batch, self._encode_texts([ids for _, ids in batch]), strict=True):
                    vectors[i] = vec
            for start in range(0, len(images), size):
                batch_images = images[start : start + size]
                for (i, _), vec in zip(batch_images, self._encode_images([im for _, im in batch_images]), strict=True):
                    vectors[i] = vec
            out = torch.stack(vectors).float() if vectors else torch.zeros((0, self._dims or 0))
            if request.dimensions is not None:
                out = out[:, : request.dimensions]
            if self.options.normalize:
                out = torch.nn.functional.normalize(out, p=2.0, dim=-1)
        return EmbeddingOutput(
            vectors=out.cpu().numpy().astype(np.float32),
            text_tokens=sum(len(ids) for _, ids in texts),
            images=len(images),
        )

    def _token_ids(self, item: EmbeddingItem) -> list[int]:
        if item.tokens is not None:
            bad = next((t for t in item.tokens if not 0 <= t < self._vocab), None)
            if bad is not None:
                raise InvalidRequestError(
                    f"'{item.param}' has the token id {bad}; this model's token ids are 0 to {self._vocab - 1}.",
                    param=item.param,
                )
            prefix, suffix = self._specials
            ids = [*prefix, *item.tokens, *suffix]
        else:
            ids = list(self.tokenizer(item.text or "", add_special_tokens=True)["input_ids"])
        if len(ids) > self.max_length:
            raise ContextLengthError(
                f"'{item.param}' is {len(ids)} tokens; the model '{self.card.id}' embeds at most "
                f"{self.max_length} tokens per input. Shorten it or split it into several inputs.",
                param=item.param,
            )
        return ids

    def _encode_texts(self, batch: list[list[int]]) -> list[Any]:
        import torch

        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([x + [pad] * (width - len(x)) for x in batch], device=self.model.device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in batch], device=self.model.device)
        if self.dual:
            return list(_features(self.model.get_text_features(input_ids=ids, attention_mask=mask)))
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "last":
            pooled = hidden[torch.arange(hidden.shape[0]), mask.sum(dim=1) - 1]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return list(pooled)

    def _encode_images(self, batch: list[Any]) -> list[Any]:
        pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.model.device, dtype=self.model.dtype)
        return list(_features(self.model.get_image_features(pixel_values=pixels)))


def _features(out: Any) -> Any:
    """transformers 5 returns an output object whose ``pooler_output`` is the projected features; 4.x a tensor."""
    return out if hasattr(out, "shape") else out.pooler_output


def _special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text ([CLS] ... [SEP], <s> ... </s>).

    Token-id inputs get the same, so that ``[ids]`` embeds like the text they encode. Found by
    encoding a probe with and without special tokens: tokenizers expose their template in
    different ways (fast post-processors, slow ``build_inputs_...``), and this works for all.
    """
    probe = "hello"
    bare = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    return [], []
