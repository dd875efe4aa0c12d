"""Tiny LLaVA-style vision-language model and tiny text-only causal LM (seeded random weights).

The LLaVA model is real: a CLIP vision tower (56 px, patch 14 -> 16 image tokens), a
projector and a Llama decoder, with a LlavaProcessor that expands each ``<image>`` into the
16 tokens the vision tower produces. Its outputs are random text; the pipeline is genuine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmserve.catalog.builders.tokenizer import CHAT_TEMPLATE, train_bpe_tokenizer

IMAGE_SIZE = 56
PATCH = 14
IMAGE_TOKENS = (IMAGE_SIZE // PATCH) ** 2  # 16


def _text_config(
    tok: Any, *, layers: int = 2, hidden: int = 64, max_positions: int = 2048, head_dim: int | None = None
) -> Any:
    """A tiny Llama text config. ``head_dim`` defaults to hidden / heads (16)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        head_dim=head_dim,
    )


def demo_generation_config(model: Any, tok: Any) -> None:
    """Keep random weights to answers a reader can see: printable tokens, and never an empty answer.

    Non-printable tokens are listed in ``suppress_tokens`` and ``min_new_tokens`` is 1 (random
    weights sample the end of sequence first about once in a hundred answers): both standard
    generation_config fields that real models use too, and the engines honour them.
    """
    specials = set(tok.all_special_ids)
    bad = []
    for i in range(len(tok)):
        text = tok.decode([i])
        if i not in specials and (not text or not all(c.isprintable() and c.isascii() for c in text)):
            bad.append(i)
    model.generation_config.suppress_tokens = bad
    model.generation_config.min_new_tokens = 1


def build_tiny_vlm(out: Path, *, seed: int = 0) -> None:
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = train_bpe_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
        projection_dim=32,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=_text_config(tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_seq_length=IMAGE_TOKENS,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=CHAT_TEMPLATE,
    )
    demo_generation_config(model, tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def build_tiny_text_lm(out: Path, *, seed: int = 0, max_positions: int = 2048) -> None:
    """A text-only Llama causal LM with the same tokenizer and chat template."""
    import torch
    from transformers import LlamaForCausalLM

    tok = train_bpe_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_text_config(tok, max_positions=max_positions)).eval()
    demo_generation_config(model, tok)
    model.save_pretrained(out)
    tok.save_pretrained(out)
