"""The options of a transformers-chat card (``options:``), validated when the catalog loads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmserve.engines.base import EngineOptions
from mmserve.engines.transformers_chat.hooks import ProcessorTarget

# (max_batch_size, max_batch_tokens) when the card sets none. On a CPU a decoding step
# costs little more for 16 rows than for 1 (benchmarks/chat.py), and a prefill holds up
# every running row, so few prompt tokens join per step; a GPU batches far more.
CPU_BATCH = (16, 512)
GPU_BATCH = (64, 8192)


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
    user_special_tokens: Literal["escape", "allow"] = Field(
        default="escape",
        description="Special tokens typed in user and tool text (<|im_start|>, <image>...): 'escape' reads them as "
        "plain text (a zero-width space after their first character); 'allow' makes them control tokens, as vLLM "
        "does (a user can then forge turns).",
    )
    max_batch_size: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description=f"Generations decoded together per replica (rows of the batch; a request with n: 4 is 4 rows). "
        f"Unset: {CPU_BATCH[0]} on a CPU, {GPU_BATCH[0]} on a GPU. Also the deployment's default max_concurrency.",
    )
    max_batch_tokens: int | None = Field(
        default=None,
        ge=1,
        description=f"Prompt tokens prefilled between two decoding steps (at least one prompt, however long). "
        f"Unset: {CPU_BATCH[1]} on a CPU, {GPU_BATCH[1]} on a GPU.",
    )
