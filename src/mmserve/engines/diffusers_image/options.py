"""The options of a diffusers-image card (``options:``), validated when the catalog loads, and the
defaults of the two that depend on the device.

How concurrent requests share the hardware differs between a GPU and a CPU. On a GPU one image
leaves the device mostly idle: requests of one size and step count batched into one pipeline
call make more images a second. On a CPU the work is compute-bound from the first image, and a
batch is slower per image than one call per request; what adds images a second there is running
calls side by side, each on cores of its own. Measured (``benchmarks/images.py``'s concurrency
legs, demo-image 512x512, 2 cores, torch's intra-op threads 1): with 4 clients, one worker batching
up to 4 images made 0.73-0.87x the images a second of one client; one worker without batching
1.03x; two workers without batching 1.50-1.62x; two workers batching 0.84x. The same direct
pipeline call (no server) makes 4 images 0.89x as fast per image as 1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mmserve.engines.base import EngineOptions

Quality = Literal["low", "medium", "high"]

GPU_BATCH_IMAGES = 4  # max_batch_images on an accelerator when the card sets none (1 on a CPU)


def concurrency_defaults(device: str, cores: int, threads: int) -> tuple[int, int]:
    """(max_batch_images, parallel_generations) for a card that sets neither, on ``device``.

    On an accelerator: batches of up to 4 images, one call at a time. On a CPU: no batching, and
    as many calls at once as torch's intra-op teams (``threads`` each) fit in the ``cores`` this
    process may use, at least one.
    """
    if device != "cpu":
        return GPU_BATCH_IMAGES, 1
    return 1, max(1, cores // max(1, threads))


class QualitySteps(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low: int = Field(default=15, ge=1)
    medium: int = Field(default=30, ge=1)
    high: int = Field(default=50, ge=1)


class DiffusersImageOptions(EngineOptions):
    pipeline: str = Field(
        default="auto", description="'auto' (AutoPipelineForText2Image) or a diffusers pipeline class name."
    )
    image_to_image_pipeline: str = Field(default="auto", description="'auto' (AutoPipelineForImage2Image) or a class.")
    inpaint_pipeline: str = Field(default="auto", description="'auto' (AutoPipelineForInpainting) or a class.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    variant: str | None = Field(default=None, description="Weight file variant, e.g. 'fp16'.")
    scheduler: str | None = Field(default=None, description="A diffusers scheduler class replacing the model's.")
    quality_steps: QualitySteps = Field(default_factory=QualitySteps, description="quality -> denoising steps.")
    default_quality: Quality = "medium"
    max_steps: int = Field(default=150, ge=1)
    guidance_scale: float | None = Field(default=None, ge=0, description="None: the pipeline's own default.")
    image_to_image_strength: float = Field(default=0.8, gt=0, le=1)
    inpaint_strength: float = Field(default=1.0, gt=0, le=1)
    size_multiple: int | None = Field(default=None, ge=1, description="Sides must be multiples of it (None: VAE's).")
    max_input_images: int = Field(default=1, ge=1, description="Images one edit may combine (pipelines taking a list).")
    paste_unmasked: bool = Field(
        default=True, description="Inpainting: copy the input's pixels back outside the mask, so only the mask changes."
    )
    parallel_generations: int | None = Field(
        default=None,
        ge=1,
        description="Pipeline calls run at once in worker threads. Unset: 1 on a GPU; on a CPU, the cores the server "
        "may use divided by torch's intra-op threads (concurrent requests then run side by side, a core each).",
    )
    max_batch_images: int | None = Field(
        default=None,
        ge=1,
        description="Images one pipeline call makes for concurrent text-to-image requests of the same size and "
        f"steps (a request asking more runs alone). Unset: {GPU_BATCH_IMAGES} on a GPU, 1 on a CPU (there a batch "
        "is slower per image than calls side by side).",
    )
