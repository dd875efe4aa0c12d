"""Tiny Wan text/image-to-video pipeline (seeded random weights) for the demo and the tests.

A real diffusers ``WanPipeline`` directory: a UMT5 text encoder (d_model 32) with a Unigram
tokenizer trained by ``tokenizers`` on a few sentences, an ``AutoencoderKLWan`` (base_dim 3,
z_dim 16, one residual block per stage; 8x spatial and 4x temporal compression, so clips have ``4k+1`` frames and sides
that are multiples of 16 with the transformer's 2x2 patches) and a 2-layer
``WanTransformer3DModel``. It is saved with ``expand_timesteps=True`` (the Wan 2.2 TI2V
scheme): the first latent frame can be pinned to an encoded reference image, so the same
transformer serves text-to-video (``WanPipeline``) and image-to-video
(``WanImageToVideoPipeline``). Its videos are coloured noise; the pipeline is genuine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmserve.catalog.builders.tokenizer import SENTENCES


def train_unigram_tokenizer(*, vocab_size: int = 400) -> Any:
    """A T5-style Unigram tokenizer (``</s>`` appended, ``<pad>`` = 0) trained in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(SENTENCES * 4, trainer)
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", model_max_length=512
    )


def build_tiny_wan(out: Path, *, seed: int = 0, rope_max_seq_len: int = 256) -> None:
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tok = train_unigram_tokenizer()
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tok),
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id,
        )
    ).eval()
    # Decoding dominates CPU time (3-channel 3D convolutions at full resolution); one residual
    # block per decoder stage (num_res_blocks=0) halves it and is still Wan's architecture.
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=0, temperal_downsample=[False, True, True]
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=rope_max_seq_len,  # positions per axis: 12 s at 30 fps is 91 latent frames
    )
    # Wan's own scheduler settings (flow matching with UniPC); shift 3.0 suits small resolutions.
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    pipe: Any = WanPipeline(
        tokenizer=tok,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        expand_timesteps=True,
    )
    pipe.save_pretrained(out)
