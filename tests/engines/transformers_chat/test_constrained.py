"""The grammar logits processor: masks, token consumption and its safety nets, on a real tokenizer."""

from __future__ import annotations

import pytest
import torch

from mmserve.catalog.builders.tokenizer import train_bpe_tokenizer
from mmserve.chatformat.grammar import OutputConstraint
from mmserve.engines.transformers_chat.constrained import GrammarCompiler

SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def compiler() -> GrammarCompiler:
    tok = train_bpe_tokenizer()
    return GrammarCompiler(tok, len(tok) + 7, [tok.eos_token_id])  # logits wider than the vocabulary


def allowed(scores: torch.Tensor) -> set[int]:
    return set(torch.nonzero(torch.isfinite(scores[0])).flatten().tolist())


def test_decoding_step_by_step_yields_the_only_valid_answer(compiler: GrammarCompiler) -> None:
    proc = compiler.processor(OutputConstraint(json_schema=SCHEMA), None, prompt_len=3)
    tok = compiler.tokenizer
    ids = torch.tensor([[5, 6, 7]])
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        scores = proc(ids, torch.randn((1, compiler.vocab_size), generator=gen))
        assert all(i < len(tok) for i in allowed(scores))  # padding ids never
        token = int(torch.argmax(scores))
        if token == tok.eos_token_id:
            break
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    text = tok.decode(ids[0, 3:].tolist())
    assert text in ('{"ok": true}', '{"ok": false}')


def test_grammar_wins_when_other_processors_masked_everything(compiler: GrammarCompiler) -> None:
    proc = compiler.processor(OutputConstraint(json_schema=SCHEMA), None, prompt_len=1)
    brace = compiler.tokenizer.encode("{", add_special_tokens=False)[0]
    scores = torch.full((1, compiler.vocab_size), float("-inf"))
    scores[0, 3] = 0.0  # the only token a suppress list left is one the grammar forbids
    out = proc(torch.tensor([[1]]), scores)
    assert brace in allowed(out) and 3 not in allowed(out)


def test_a_token_the_grammar_refused_stops_constraining(compiler: GrammarCompiler) -> None:
    proc = compiler.processor(OutputConstraint(json_schema=SCHEMA), None, prompt_len=1)
    proc(torch.tensor([[1]]), torch.zeros((1, compiler.vocab_size)))
    letter = compiler.tokenizer.encode("x", add_special_tokens=False)[0]
    scores = torch.zeros((1, compiler.vocab_size))
    assert torch.equal(proc(torch.tensor([[1, letter]]), scores), scores)  # unconstrained, no exception
