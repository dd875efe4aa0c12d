from __future__ import annotations

from pathlib import Path

import pytest

from mmserve.catalog.builders.tokenizer import train_bpe_tokenizer
from mmserve.engines.transformers_chat.textstream import IncrementalDetokenizer, StopMatcher


@pytest.fixture(scope="module")
def tok():  # type: ignore[no-untyped-def]
    return train_bpe_tokenizer()


@pytest.mark.parametrize("text", ["Hello, how can I help you today?", "naïve café — 猫 🐈 ok", '{"a": [1, 2]}'])
def test_incremental_detokenizer_round_trips_multibyte_text(tok, text: str) -> None:  # type: ignore[no-untyped-def]
    ids = tok.encode(text, add_special_tokens=False)
    detok = IncrementalDetokenizer(lambda xs: tok.decode(xs, skip_special_tokens=True))
    pieces = [detok.push(i) for i in ids]
    pieces.append(detok.flush())
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)  # never a half character
    assert sum(1 for p in pieces if p) > 3  # it really streams


def test_stop_matcher_cuts_before_stop_across_chunks() -> None:
    m = StopMatcher(["END"])
    out = [m.push(c) for c in ["abc E", "N", "Dxyz"]]
    assert "".join(out) + m.flush() == "abc "
    assert m.stopped


def test_stop_matcher_releases_false_starts() -> None:
    m = StopMatcher(["###"])
    out = "".join(m.push(c) for c in ["a#", "#b", "c"]) + m.flush()
    assert out == "a##bc" and not m.stopped


def test_stop_matcher_earliest_of_several() -> None:
    m = StopMatcher(["zz", "b"])
    assert m.push("aabzz") == "aa" and m.stopped
    assert m.push("more") == ""


def test_no_stops_passes_through() -> None:
    m = StopMatcher([])
    assert m.push("x") == "x" and m.flush() == ""


@pytest.mark.parametrize("name", ["text-lm", "tool-lm"])
def test_the_fast_decoder_decodes_as_the_tokenizer(models_dir: Path, name: str) -> None:
    import random

    from transformers import AutoTokenizer

    from mmserve.catalog.builders import build_demo_model
    from mmserve.engines.transformers_chat.textstream import fast_decoder

    tok = AutoTokenizer.from_pretrained(build_demo_model(name, models_dir))
    fast = fast_decoder(tok)
    assert fast is not tok.decode  # the Rust tokenizer's own
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randrange(1, 12))]
        assert fast(ids, skip_special_tokens=True) == tok.decode(ids, skip_special_tokens=True)
