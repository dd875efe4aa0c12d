"""Embeddings on a third-party provider (``POST /embeddings``).

Texts and token-id inputs go to the provider as OpenAI's ``input`` array (one request for the
whole batch), with ``dimensions`` when the request shortens vectors (cards declare it with
``capabilities.matryoshka``). Vectors come back as base64 little-endian float32 by default
(``encoding_format``: a quarter of the JSON floats' size, decoded with numpy without parsing a
number per value); ``float`` for providers without it. The provider's ``usage.prompt_tokens`` is
what mmserve meters; without it, the request's estimate. OpenAI's API embeds no images: an image
input to an upstream card is refused with a 400 before anything is sent.
"""

from __future__ import annotations

import binascii
from typing import Any, Literal

import numpy as np
import pybase64
from pydantic import Field

from mmserve.engines.base import EmbeddingEngine
from mmserve.engines.types import EmbeddingInput, EmbeddingOutput
from mmserve.engines.upstream.base import UpstreamEngine
from mmserve.engines.upstream.options import UpstreamOptions
from mmserve.errors import ModelCapabilityError

CHARS_PER_TOKEN = 4  # the estimate billed when the provider reports no usage


class UpstreamEmbeddingOptions(UpstreamOptions):
    encoding_format: Literal["base64", "float"] = Field(
        default="base64", description="Asked of the provider: base64 float32 (compact) or JSON floats."
    )


class UpstreamEmbeddingEngine(UpstreamEngine, EmbeddingEngine):
    Options = UpstreamEmbeddingOptions
    options: UpstreamEmbeddingOptions

    async def embed(self, request: EmbeddingInput) -> EmbeddingOutput:
        inputs: list[str | list[int]] = []
        estimate = 0
        for item in request.items:
            if item.text is not None:
                inputs.append(item.text)
                estimate += len(item.text) // CHARS_PER_TOKEN + 1
            elif item.tokens is not None:
                inputs.append(item.tokens)
                estimate += len(item.tokens)
            else:
                raise ModelCapabilityError(
                    f"The model '{self.card.id}' (on the provider '{self.upstream.name}') embeds text only; remove "
                    "the images or use a model that embeds images (GET /v1/models?task=embedding&capability=vision).",
                    param=item.param,
                )
        body: dict[str, Any] = {
            "model": self.remote_model,
            "input": inputs,
            "encoding_format": self.options.encoding_format,
        }
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        answer = await self.upstream.request_json("POST", "/embeddings", json=body)
        vectors = self._vectors(answer, len(inputs), request.dimensions)
        usage = answer.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        billed = tokens if isinstance(tokens, int) and tokens >= 0 else estimate
        return EmbeddingOutput(vectors=vectors, text_tokens=billed)

    def _vectors(self, answer: dict[str, Any], count: int, dimensions: int | None) -> np.ndarray:
        """The answer's vectors in input order (by ``index``), all of one length."""
        data = answer.get("data")
        bad = self.upstream.bad_response
        if not isinstance(data, list) or len(data) != count:
            raise bad(f"{len(data) if isinstance(data, list) else 'no'} vectors for {count} inputs")
        rows: list[np.ndarray | None] = [None] * count
        try:
            for i, entry in enumerate(data):
                index = int(entry.get("index", i))
                raw = entry["embedding"]
                if isinstance(raw, str):
                    row = np.frombuffer(pybase64.b64decode(raw, validate=True), dtype="<f4")
                else:
                    row = np.asarray(raw, dtype=np.float32)
                if row.ndim != 1 or rows[index] is not None:
                    raise ValueError
                rows[index] = row
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, binascii.Error):
            raise bad("embeddings in an unexpected shape") from None
        lengths = {r.shape[0] for r in rows if r is not None}
        expected = dimensions or self.dimensions()
        if len(lengths) != 1 or (expected is not None and lengths != {expected}):
            raise bad(f"vectors of {sorted(lengths)} values where {expected or 'one length'} was expected")
        return np.stack([r for r in rows if r is not None]).astype(np.float32, copy=False)
