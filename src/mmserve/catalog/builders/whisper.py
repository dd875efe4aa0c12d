"""A tiny Whisper (seeded random weights) with a complete, real Whisper tokenizer layout.

The files are those of a real checkpoint: ``WhisperForConditionalGeneration`` weights and
config, a ``generation_config.json`` with the language/task/timestamp tables and alignment
heads that long-form decoding and word timestamps need, and a ``WhisperProcessor`` (80-bin
log-mel feature extractor + byte-level BPE tokenizer). The vocabulary is Whisper's layout
in miniature: BPE pieces, ``<|endoftext|>``, ``<|startoftranscript|>``, the 100 language
tokens, task tokens, ``<|nospeech|>``, ``<|notimestamps|>``, then the 1501 timestamp tokens
``<|0.00|>`` ... ``<|30.00|>``. Its transcripts are random text; the pipeline is genuine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmserve.catalog.builders.tokenizer import SENTENCES

SPEECH_SENTENCES = [
    *SENTENCES,
    "Hello world, how are you today?",
    "The weather is nice today and the sun is shining.",
    "Please transcribe this recording into text.",
    "One two three four five six seven eight nine ten.",
]
TIME_PRECISION = 0.02
TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>


def _bpe(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(SPEECH_SENTENCES * 4, trainer)
    model = json.loads(tok.to_str())["model"]
    pairs = (m.split(" ", 1) if isinstance(m, str) else m for m in model["merges"])
    merges = [(str(a), str(b)) for a, b in pairs]
    return dict(model["vocab"]), merges


def build_tokenizer() -> Any:
    from transformers import AddedToken, WhisperTokenizer
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    vocab, merges = _bpe(500)
    vocab["<|endoftext|>"] = len(vocab)
    tok = WhisperTokenizer(vocab=vocab, merges=merges)
    specials = [
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in LANGUAGES),
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]
    tok.add_special_tokens({"additional_special_tokens": specials})
    # Timestamps come right after the last special token, and are not special themselves.
    tok.add_tokens([AddedToken(f"<|{i * TIME_PRECISION:.2f}|>", special=False) for i in range(TIMESTAMPS)])
    return tok


def build_tiny_whisper(out: Path, *, seed: int = 0) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    tok = build_tokenizer()
    ids = tok.convert_tokens_to_ids
    eot, sot, notimestamps = ids("<|endoftext|>"), ids("<|startoftranscript|>"), ids("<|notimestamps|>")
    assert ids("<|0.00|>") == notimestamps + 1 == tok.all_special_ids[-1] + 1
    space = ids("Ġ")
    config = WhisperConfig(
        vocab_size=len(tok),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        begin_suppress_tokens=[space, eot],
        suppress_tokens=[],
    )
    # Like real checkpoints, suppress the control tokens inside transcripts; the tiny model also
    # never emits raw byte pieces, so that its (random) text stays printable.
    suppress = sorted(
        {i for i in tok.all_special_ids if i != eot}
        | {i for i in range(eot) if not all(c.isprintable() and c.isascii() for c in tok.decode([i]))}
    )
    config.suppress_tokens = suppress
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=448,
        begin_suppress_tokens=[space, eot],
        suppress_tokens=suppress,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=notimestamps,
        prev_sot_token_id=ids("<|startofprev|>"),
        max_initial_timestamp_index=50,
        alignment_heads=[[1, 0], [1, 1]],
        return_timestamps=False,
    )
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)
