"""The tiny image pipeline builder: deterministic, offline, loadable by every AutoPipeline."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mmserve.catalog.builders import build_demo_model
from mmserve.catalog.builders.image import build_tiny_image_pipeline, train_clip_tokenizer


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()


def test_tokenizer_handles_any_text() -> None:
    tok = train_clip_tokenizer()
    ids = tok("A sunset over mountains! Ünïcode 🙂")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.eos_token_id not in ids[1:-1]  # every byte is in the vocabulary: nothing is unknown
    assert tok.decode(ids, skip_special_tokens=True).startswith("a sunset over mountains")


def test_build_is_deterministic_and_loads_as_all_three_tasks(tmp_path: Path, models_dir: Path) -> None:
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

    built = build_demo_model("image", models_dir)
    again = tmp_path / "again"
    build_tiny_image_pipeline(again)
    assert _digest(built) == _digest(again)
    assert sum(f.stat().st_size for f in again.rglob("*") if f.is_file()) < 2_000_000
    pipe = AutoPipelineForText2Image.from_pretrained(str(built), local_files_only=True)
    assert type(pipe).__name__ == "StableDiffusionPipeline" and pipe.vae_scale_factor == 8
    assert type(AutoPipelineForImage2Image.from_pipe(pipe)).__name__ == "StableDiffusionImg2ImgPipeline"
    assert type(AutoPipelineForInpainting.from_pipe(pipe)).__name__ == "StableDiffusionInpaintPipeline"
