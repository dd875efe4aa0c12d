"""A byte-level BPE tokenizer trained in milliseconds on a few sentences (for tiny models)."""

from __future__ import annotations

from typing import Any

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A picture is worth a thousand words.",
    "What is shown in this image? Describe the image in one sentence.",
    "The cat sits on a red couch near the window.",
    "Hello, how can I help you today? Thank you very much.",
    "Mountains, rivers and a sunset over the sea.",
    "Two cats in boxing gear fight on a stage under a spotlight.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 and symbols {}[]():,.\"'-_ are common in JSON.",
]

CHAT_SPECIALS = [
    "<unk>",
    "<s>",
    "</s>",
    "<pad>",
    "<image>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|tool|>",
    "<|end|>",
]

# A Jinja chat template in the style of real VLM templates: image parts become <image>.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>' }}"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_bpe_tokenizer(
    *, vocab_size: int = 600, specials: list[str] | None = None, sentences: list[str] | None = None
) -> Any:
    """A ``PreTrainedTokenizerFast`` (byte-level BPE: any text round-trips)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = specials or CHAT_SPECIALS
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((sentences or SENTENCES) * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|end|>", unk_token="<unk>", pad_token="<pad>"
    )
