"""The ready 4-D SDPA mask of decoding steps: used only where it gives the model's own logits."""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache, FalconConfig, FalconForCausalLM, LlamaConfig, LlamaForCausalLM

from mmserve.engines.transformers_chat.batch import sdpa_masks


def _check(model: Any) -> bool:
    return sdpa_masks(model.eval(), lambda: DynamicCache(config=model.config), 0)


def test_a_plain_causal_model_on_sdpa_takes_the_ready_mask() -> None:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    assert _check(LlamaForCausalLM._from_config(config, attn_implementation="sdpa"))
    assert not _check(LlamaForCausalLM._from_config(config, attn_implementation="eager"))  # eager takes another mask


def test_a_model_that_reads_the_2d_mask_for_more_keeps_it() -> None:
    # Falcon with ALiBi builds its position biases from the 2-D mask: a 4-D one would change its logits
    torch.manual_seed(0)
    config = FalconConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, alibi=True,
        new_decoder_architecture=False, multi_query=True,
    )  # fmt: skip
    assert not _check(FalconForCausalLM._from_config(config, attn_implementation="sdpa"))
