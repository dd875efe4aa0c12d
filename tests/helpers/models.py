"""Tiny models for tests that the demo builders do not make."""

from __future__ import annotations

from pathlib import Path


def build_short_context_gpt2(out: Path, *, positions: int = 24) -> Path:
    """A GPT-2 whose learned position table has only ``positions`` rows.

    Served through a card that claims a longer context, it fails for real (an index error
    inside the model) once generation passes ``positions`` tokens: a genuine mid-stream
    engine failure.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from mmserve.catalog.builders.tokenizer import CHAT_TEMPLATE, train_bpe_tokenizer

    tok = train_bpe_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=positions,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    GPT2LMHeadModel(config).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out
