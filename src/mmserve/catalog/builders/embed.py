"""Tiny embedding models (seeded random weights): a BERT-style text encoder and a CLIP dual encoder.

Both are the real architectures (``BertModel``; ``CLIPModel`` with a ``CLIPProcessor``),
saved as real weights are, with byte-level BPE tokenizers that wrap every text in begin /
end tokens as BERT's and CLIP's do (CLIP pools its text at the end token). Their vectors are
not meaningful; the pipelines are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmserve.catalog.builders.tokenizer import train_bpe_tokenizer

IMAGE_SIZE = 56
PATCH = 14
CLIP_DIMENSIONS = 32
TEXT_ENCODER_DIMENSIONS = 64
CLIP_CONTEXT = 77  # CLIP's text context, in tokens


def _wrapping_tokenizer(begin: str, end: str, pad: str) -> Any:
    """A BPE tokenizer whose encodings are ``begin`` + text + ``end``."""
    from tokenizers.processors import TemplateProcessing

    tok = train_bpe_tokenizer(specials=["<unk>", pad, begin, end])
    ids = {t: tok.convert_tokens_to_ids(t) for t in (begin, end)}
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{begin} $A {end}", pair=f"{begin} $A {end} $B {end}", special_tokens=list(ids.items())
    )
    tok.bos_token, tok.eos_token, tok.pad_token = begin, end, pad
    return tok


def build_tiny_text_encoder(out: Path, *, seed: int = 0) -> None:
    import torch
    from transformers import BertConfig, BertModel

    tok = _wrapping_tokenizer("[CLS]", "[SEP]", "[PAD]")
    tok.model_max_length = 512
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=TEXT_ENCODER_DIMENSIONS,
        intermediate_size=TEXT_ENCODER_DIMENSIONS * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertModel(config).eval()  # with BERT's pooler, as checkpoints have it (unused: see pooling)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def build_tiny_clip(out: Path, *, seed: int = 0) -> None:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tok = _wrapping_tokenizer("<|startoftext|>", "<|endoftext|>", "<pad>")
    tok.model_max_length = CLIP_CONTEXT
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": CLIP_CONTEXT,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,  # not 2: CLIP reads id 2 as "pool at the highest id" (old configs)
            "pad_token_id": tok.pad_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH,
        },
        projection_dim=CLIP_DIMENSIONS,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    model.save_pretrained(out)
    CLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)
