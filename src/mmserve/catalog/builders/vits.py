"""A tiny VITS text-to-speech model (MMS-TTS layout) with seeded random weights.

The directory has what ``facebook/mms-tts-*`` checkpoints have: ``VitsModel`` weights and
config and a character-level ``VitsTokenizer`` (``vocab.json``; blanks between characters,
lower-casing, no phonemizer). The duration predictor is the deterministic one, with its
output bias set to about three spectrogram frames per token (~0.1 s per character), so a
sentence comes out at a speech-like length (random weights otherwise give durations anywhere
from nothing to minutes).
The waveform is noise shaped by random weights; the pipeline is genuine.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

CHARACTERS = list(" '-,.?!:;") + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
FRAMES_PER_TOKEN = 2.5


def build_tiny_vits(out: Path, *, seed: int = 0) -> None:
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    vocab = {"<pad>": 0, "<unk>": 1, **{c: i + 2 for i, c in enumerate(CHARACTERS)}}
    vocab_file = out / "vocab.json"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False))
    tok = VitsTokenizer(vocab_file=str(vocab_file), add_blank=True, normalize=True, phonemize=False)
    config = VitsConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=33,
        use_stochastic_duration_prediction=False,
        duration_predictor_filter_channels=16,
        upsample_initial_channel=32,
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2,
        sampling_rate=16000,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = VitsModel(config).eval()
    with torch.no_grad():
        proj = model.duration_predictor.proj
        proj.weight.mul_(0.01)
        proj.bias.fill_(math.log(FRAMES_PER_TOKEN))
    model.save_pretrained(out)
    tok.save_pretrained(out)
