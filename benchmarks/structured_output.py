"""Structured output and tool calling: the decoder library, the server's overhead, the parsers.

    python benchmarks/structured_output.py library   # llguidance vs xgrammar vs outlines-core
    python benchmarks/structured_output.py server    # constrained vs free decoding through mmserve
    python benchmarks/structured_output.py engine    # the grammar's cost per step and per request
    python benchmarks/structured_output.py parsers   # reasoning + tool-call parsing throughput

``library`` compiles a fresh JSON schema (as every request brings its own) and walks a valid
answer token by token, computing each step's mask, on byte-level BPE tokenizers of about
600, 8k and 32k tokens; libraries that are not installed are skipped (only llguidance is a
dependency: ``pip install xgrammar outlines-core`` to compare). ``server`` starts
``mmserve serve`` on the demo catalog and times ``demo-tools`` per generated token with and
without ``response_format`` / ``tool_choice: required``. Results go to
benchmarks/results/structured_output_<part>.json; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _common import mmserve, summarize, write_result

ANSWER = {"name": "kalo mine rusa", "age": 42, "tags": ["a", "c"], "ok": True}


def _schema(variant: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40 + variant},  # a new schema each time: no cache hits
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
            "ok": {"type": "boolean"},
        },
        "required": ["name", "age", "tags", "ok"],
        "additionalProperties": False,
    }


def _corpus(n: int = 20000, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "zu", "pe", "qua", "rix", "ton", "bel", "dor"]
    words = ["".join(r.choice(syllables) for _ in range(r.randint(1, 5))) for _ in range(60000)]
    ends = [".", ",", "!", '": 1}', '{"a":', "?"]
    return [" ".join(r.choice(words) for _ in range(12)) + r.choice(ends) for _ in range(n)]


def _llguidance(tok: Any, vocab: int, schemas: list[dict[str, Any]], ids: list[int]) -> dict[str, float]:
    import llguidance
    import llguidance.hf
    import numpy as np

    t0 = time.perf_counter()
    lltok = llguidance.hf.from_tokenizer(tok, n_vocab=vocab)
    setup = time.perf_counter() - t0
    compiles, masks = [], []
    mask = np.zeros((vocab + 31) // 32, dtype=np.int32)
    for schema in schemas:
        t0 = time.perf_counter()
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides={"whitespace_flexible": False})
        matcher = llguidance.LLMatcher(lltok, grammar)
        compiles.append(time.perf_counter() - t0)
        for t in ids:
            t0 = time.perf_counter()
            matcher.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes)
            masks.append(time.perf_counter() - t0)
            assert (int(mask[t // 32]) >> (t % 32)) & 1, "llguidance refused the answer"
            matcher.consume_token(t)
    return _times(setup, compiles, masks)


def _xgrammar(tok: Any, vocab: int, schemas: list[dict[str, Any]], ids: list[int]) -> dict[str, float]:
    import xgrammar

    t0 = time.perf_counter()
    compiler = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo.from_huggingface(tok, vocab_size=vocab))
    setup = time.perf_counter() - t0
    compiles, masks = [], []
    bitmask = xgrammar.allocate_token_bitmask(1, vocab)
    for schema in schemas:
        t0 = time.perf_counter()
        compiled = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))
        matcher = xgrammar.GrammarMatcher(compiled)
        compiles.append(time.perf_counter() - t0)
        for t in ids:
            t0 = time.perf_counter()
            matcher.fill_next_token_bitmask(bitmask)
            masks.append(time.perf_counter() - t0)
            assert (int(bitmask[0, t // 32]) >> (t % 32)) & 1, "xgrammar refused the answer"
            matcher.accept_token(t)
    return _times(setup, compiles, masks)


def _outlines_core(tok: Any, vocab: int, schemas: list[dict[str, Any]], ids: list[int]) -> dict[str, float]:
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.json_schema import build_regex_from_schema

    t0 = time.perf_counter()
    mapping: dict[str, list[int]] = {}
    for i in range(len(tok)):
        if i != tok.eos_token_id:
            mapping.setdefault(tok.convert_ids_to_tokens(i), []).append(i)
    voc = Vocabulary(tok.eos_token_id, mapping)
    setup = time.perf_counter() - t0
    compiles, masks = [], []
    for schema in schemas:
        t0 = time.perf_counter()
        guide = Guide(Index(build_regex_from_schema(json.dumps(schema), whitespace_pattern=""), voc))
        compiles.append(time.perf_counter() - t0)
        for t in ids:
            t0 = time.perf_counter()
            allowed = set(guide.get_tokens())
            masks.append(time.perf_counter() - t0)
            assert t in allowed, "outlines-core refused the answer"
            if t != tok.eos_token_id:
                guide.advance(t)
    return _times(setup, compiles, masks)


def _times(setup: float, compiles: list[float], masks: list[float]) -> dict[str, float]:
    return {
        "tokenizer_setup_s": setup,
        "compile_ms_first": 1000 * compiles[0],
        "compile_ms_median": 1000 * statistics.median(compiles),
        "mask_us_median": 1e6 * statistics.median(masks),
        "mask_us_mean": 1e6 * statistics.fmean(masks),
    }


def library(vocab_sizes: list[int], schemas: int) -> None:
    import importlib.util

    from mmserve.catalog.builders.tokenizer import train_bpe_tokenizer

    backends = {"llguidance": _llguidance, "xgrammar": _xgrammar, "outlines_core": _outlines_core}
    levels = []
    for size in vocab_sizes:
        tok = train_bpe_tokenizer(vocab_size=size, sentences=_corpus() if size > 1000 else None)
        answer = json.dumps(ANSWER, separators=(",", ":"))
        ids = [*tok.encode(answer, add_special_tokens=False), tok.eos_token_id]
        level: dict[str, Any] = {"vocab": len(tok), "answer_tokens": len(ids)}
        for name, run in backends.items():
            if importlib.util.find_spec(name) is None:
                level[name] = "not installed"
                continue
            # the compact separators of each library's default differ; the answer uses (",", ":")
            run_schemas = [_schema(i) for i in range(schemas)]
            if name == "llguidance":
                for s in run_schemas:
                    s["x-guidance"] = {"item_separator": ",", "key_separator": ":"}
            level[name] = run(tok, len(tok), run_schemas, ids)
            level[name]["first_request_ms_estimate"] = (
                level[name]["compile_ms_median"] + level[name]["mask_us_mean"] * len(ids) / 1000
            )
        levels.append(level)
        print(json.dumps(level))
    write_result("structured_output_library", {"schemas_per_level": schemas, "levels": levels})


def server(requests: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="mmserve-bench-"))
    rating = {
        "type": "object",
        "properties": {
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "label": {"type": "string", "maxLength": 24},
            "tags": {"type": "array", "items": {"enum": ["fast", "cheap", "good"]}, "maxItems": 3},
        },
        "required": ["stars", "label", "tags"],
        "additionalProperties": False,
    }
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 24}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
    base = {"model": "demo-tools", "messages": [{"role": "user", "content": "Rate it."}], "temperature": 1.0}
    modes = {
        "free": {"max_tokens": 48},
        "json_schema": {
            "max_tokens": 200,
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": rating}},
        },
        "tool_required": {"max_tokens": 200, "tools": [weather], "tool_choice": "required"},
    }
    out: dict[str, Any] = {"model": "demo-tools", "requests_per_mode": requests}
    stats: dict[str, dict[str, list[float]]] = {m: {"per_token": [], "latency": [], "tokens": []} for m in modes}
    with mmserve(data_dir) as url, httpx.Client(timeout=120) as client:
        for body in modes.values():  # warm-up (loads the serverless model)
            client.post(f"{url}/v1/chat/completions", json={**base, **body, "seed": 0}).raise_for_status()
        for seed in range(requests):  # modes interleaved: load changes on the machine hit them alike
            for name, body in modes.items():
                t0 = time.perf_counter()
                r = client.post(f"{url}/v1/chat/completions", json={**base, **body, "seed": seed})
                elapsed = time.perf_counter() - t0
                r.raise_for_status()
                n = r.json()["usage"]["completion_tokens"]
                stats[name]["tokens"].append(n)
                stats[name]["latency"].append(elapsed)
                stats[name]["per_token"].append(elapsed / max(n, 1))
    for name, st in stats.items():
        out[name] = {
            "completion_tokens": sum(st["tokens"]),
            "ms_per_token_median": 1000 * statistics.median(st["per_token"]),
            "latency": summarize(st["latency"]),
        }
    free = out["free"]["ms_per_token_median"]
    out["ms_per_token_ratio_vs_free"] = {m: out[m]["ms_per_token_median"] / free for m in modes}
    print(json.dumps(out, indent=2))
    write_result("structured_output_server", out)


def engine(requests: int) -> None:
    """In process: the grammar processor's cost per decoding step and per request (compile)."""
    import asyncio

    from mmserve.cards import ModelCard
    from mmserve.catalog.builders import build_demo_model
    from mmserve.chatformat.grammar import OutputConstraint
    from mmserve.engines.transformers_chat import constrained
    from mmserve.engines.transformers_chat.engine import TransformersChatEngine
    from mmserve.engines.types import ChatInput, ChatMessage, SamplingParams

    source = build_demo_model("tool-lm", Path(tempfile.mkdtemp(prefix="mmserve-bench-")))
    card = ModelCard(id="bench", task="chat", engine="transformers-chat", source="demo:tool-lm")
    chat = TransformersChatEngine(card, source=source, device="cpu")
    chat.load()
    steps: list[float] = []
    compiles: list[float] = []
    step, compile_ = constrained.GrammarProcessor.__call__, constrained.GrammarCompiler.processor

    def timed_step(self: Any, *a: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return step(self, *a)
        finally:
            steps.append(time.perf_counter() - t0)

    def timed_compile(self: Any, *a: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return compile_(self, *a)
        finally:
            compiles.append(time.perf_counter() - t0)

    constrained.GrammarProcessor.__call__ = timed_step  # type: ignore[method-assign]
    constrained.GrammarCompiler.processor = timed_compile  # type: ignore[method-assign]

    async def run(seed: int, constraint: OutputConstraint | None) -> tuple[int, float]:
        params = SamplingParams(max_tokens=200 if constraint else 40, seed=seed)
        inp = ChatInput(messages=[ChatMessage("user", "Rate it.")], params=params, constraint=constraint)
        t0, n = time.perf_counter(), 0
        async for d in chat.generate(inp):
            n = d.completion_tokens
        return n, time.perf_counter() - t0

    async def main() -> dict[str, Any]:
        per_token: dict[str, list[float]] = {"free": [], "json_schema": []}
        for seed in range(requests):
            for name, c in (("free", None), ("json_schema", OutputConstraint(json_schema=_schema(seed)))):
                n, dt = await run(seed, c)
                per_token[name].append(dt / max(n, 1))
        return {m: 1000 * statistics.median(v) for m, v in per_token.items()}

    ms_per_token = asyncio.run(main())
    result = {
        "model": "demo:tool-lm (2 layers x 64)",
        "ms_per_token_median": ms_per_token,
        "grammar_step_us_median": 1e6 * statistics.median(steps),
        "grammar_step_us_mean": 1e6 * statistics.fmean(steps),
        "grammar_compile_ms_median": 1000 * statistics.median(compiles),
        "grammar_step_share_of_a_token": statistics.median(steps) / (ms_per_token["json_schema"] / 1000),
    }
    print(json.dumps(result, indent=2))
    write_result("structured_output_engine", result)


def parsers(repeat: int) -> None:
    from mmserve.chatformat.output import OutputFormat

    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>'
    text = "<think>\n" + "I should check the weather first. " * 40 + "\n</think>\n\n" + "Sure.\n" + call * 3
    fmt = OutputFormat(reasoning_format="think-tags", tool_call_format="hermes", tool_names=frozenset({"get_weather"}))
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]  # ~ one token per 4 characters
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fmt.parser()
        for n, p in enumerate(pieces):
            out.feed(p, n)
        out.finish(len(pieces))
    elapsed = time.perf_counter() - t0
    result = {"deltas": len(pieces) * repeat, "us_per_delta": 1e6 * elapsed / (len(pieces) * repeat)}
    print(json.dumps(result))
    write_result("structured_output_parsers", result)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("part", choices=["library", "server", "engine", "parsers"])
    p.add_argument("--vocab", type=int, nargs="+", default=[600, 8000, 32000])
    p.add_argument("--schemas", type=int, default=5)
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--repeat", type=int, default=200)
    args = p.parse_args()
    if args.part == "library":
        library(args.vocab, args.schemas)
    elif args.part == "server":
        server(args.requests)
    elif args.part == "engine":
        engine(args.requests)
    else:
        parsers(args.repeat)


if __name__ == "__main__":
    main()
