"""A tiny Stable Diffusion pipeline (seeded random weights) for text-to-image, image-to-image and inpainting.

The pipeline is genuine diffusers: a CLIP text encoder with a CLIP BPE tokenizer trained
locally by ``tokenizers``, a UNet2DConditionModel, an AutoencoderKL (8x downsampling, like
SD's) and an Euler scheduler, saved as a standard ``model_index.json`` directory that
``AutoPipelineForText2Image`` loads and that ``AutoPipelineForImage2Image`` /
``AutoPipelineForInpainting`` derive from with ``from_pipe``. Its images are noise-like
(random weights); the work done per step is real. Sizes are chosen so that 512x512 takes
about a second on one CPU core: attention only at the lowest UNet level, no attention in
the VAE's middle block, a handful of channels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmserve.catalog.builders.tokenizer import SENTENCES

CLIP_SPECIALS = ["<|startoftext|>", "<|endoftext|>"]
MAX_PROMPT_TOKENS = 77
TEXT_DIM = 32


def train_clip_tokenizer(*, vocab_size: int = 500, sentences: list[str] | None = None) -> Any:
    """A ``CLIPTokenizer`` whose BPE merges are trained here, on a few sentences.

    It uses CLIP's own normalizer and pre-tokenizer (lower-casing, byte-level, ``</w>``
    word ends), and its vocabulary holds every byte with and without ``</w>``, so any
    text tokenizes.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    # An untrained CLIPTokenizer only to borrow CLIP's normalizer and pre-tokenizer.
    seed_vocab = {tok: i for i, tok in enumerate(CLIP_SPECIALS + alphabet)}
    backend = CLIPTokenizer(vocab=seed_vocab, merges=[]).backend_tokenizer
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.normalizer = backend.normalizer
    tok.pre_tokenizer = backend.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=CLIP_SPECIALS,
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tok.train_from_iterator((sentences or SENTENCES) * 4, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    for ch in alphabet:
        for piece in (ch, ch + "</w>"):
            vocab.setdefault(piece, len(vocab))
    merges: Any = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_PROMPT_TOKENS)


def build_tiny_image_pipeline(out: Path, *, seed: int = 0) -> None:
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = train_clip_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_DIM,
            intermediate_size=TEXT_DIM * 2,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MAX_PROMPT_TOKENS,
            projection_dim=TEXT_DIM,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    # (typed Any: diffusers' classes are not fully typed for mypy)
    unet: Any = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 8, 8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=4,
    )
    vae: Any = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(4, 4, 4, 4),  # 4 levels: 8x downsampling, as in Stable Diffusion
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=512,
        mid_block_add_attention=False,  # attention over 64x64 latents would dominate the run time
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="trailing",  # good images in few steps
    )
    pipe: Any = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out)
