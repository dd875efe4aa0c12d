"""Tiny Qwen2-Audio-style audio-language model (seeded random weights) for the demo and the tests.

A real ``Qwen2AudioForConditionalGeneration``: a Whisper-style audio encoder (128 mel bins,
2 layers of width 32, a conv stem and average pooling: 25 audio tokens per second of sound,
at most 30 s), a projector and a 2-layer Qwen2 decoder, with a ``Qwen2AudioProcessor`` whose
Whisper feature extractor turns 16 kHz audio into log-mel features and expands each
``<|AUDIO|>`` placeholder into the audio's tokens. Its answers are random text; the
pipeline is genuine. Transformers has no other audio-language model that runs without
torchvision here and builds this small.
"""

from __future__ import annotations

from pathlib import Path

from mmserve.catalog.builders.tokenizer import CHAT_SPECIALS, train_bpe_tokenizer
from mmserve.catalog.builders.vlm import demo_generation_config

AUDIO_SPECIALS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
# Qwen2-Audio's chat format, reduced: each audio part becomes Audio N: <|audio_bos|><|AUDIO|><|audio_eos|>
AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>' }}"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'audio' %}{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_audio_lm(out: Path, *, seed: int = 0) -> None:
    import torch
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        Qwen2Config,
        WhisperFeatureExtractor,
    )

    tok = train_bpe_tokenizer(specials=[*CHAT_SPECIALS, *AUDIO_SPECIALS])
    audio = Qwen2AudioEncoderConfig(
        num_mel_bins=128,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        d_model=32,
        max_source_positions=1500,
    )
    text = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    config = Qwen2AudioConfig(
        audio_config=audio, text_config=text, audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>")
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128),
        tokenizer=tok,
        chat_template=AUDIO_CHAT_TEMPLATE,
        audio_token="<|AUDIO|>",
        audio_bos_token="<|audio_bos|>",
        audio_eos_token="<|audio_eos|>",
    )
    demo_generation_config(model, tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)
