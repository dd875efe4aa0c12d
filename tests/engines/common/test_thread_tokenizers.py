"""Per-thread tokenizer copies: stable within a thread, never shared across threads."""

from __future__ import annotations

import threading
from pathlib import Path

from transformers import AutoTokenizer

from mmserve.catalog.builders import build_demo_model
from mmserve.engines.common.thread_tokenizers import ThreadTokenizers


def test_each_thread_encodes_with_its_own_copy(models_dir: Path) -> None:
    shared = AutoTokenizer.from_pretrained(build_demo_model("image", models_dir) / "tokenizer")
    tokenizers = ThreadTokenizers({"tokenizer": shared, "unet": object(), "scheduler": None})
    mine = tokenizers.for_this_thread()
    assert set(mine) == {"tokenizer"} and mine["tokenizer"] is not shared
    assert tokenizers.for_this_thread()["tokenizer"] is mine["tokenizer"]  # made once per thread
    wrong: list[int] = []

    def encode(padding: str) -> None:  # what a pipeline's encode_prompt does, in two threads at once
        tok = tokenizers.for_this_thread()["tokenizer"]
        for _ in range(2000):
            ids = tok("a photo of a cat", padding=padding, max_length=77, truncation=True).input_ids
            if padding == "max_length" and len(ids) != 77:
                wrong.append(len(ids))

    threads = [threading.Thread(target=encode, args=(p,)) for p in ("max_length", "longest")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
