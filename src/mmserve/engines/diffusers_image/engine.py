"""Text-to-image, image-to-image and inpainting on any diffusers pipeline.

The text-to-image pipeline is loaded from the card's source with ``AutoPipelineForText2Image``
(or a pipeline class named in the options); the edit pipelines are derived from it with
``from_pipe`` (``AutoPipelineForImage2Image`` / ``AutoPipelineForInpainting``): one copy of the weights.

Each pipeline call:
- runs in a worker thread (``parallel_generations`` of them: on a CPU by default one per torch
  team the cores hold, see :mod:`.options`), never on the event loop;
- uses its own shallow copy of the pipeline with a fresh scheduler: diffusers pipelines and
  schedulers keep per-call state (timesteps, guidance, interrupt flag) on the object; with
  ``parallel_generations`` > 1, each worker thread also has its own tokenizers (they keep
  padding settings on the object, see :mod:`mmserve.engines.common.thread_tokenizers`);
- makes every image with its own seeded ``torch.Generator`` (image i of a request from its
  seed + i): reproducible under any concurrency, and no global seed is touched;
- reports progress from the pipeline's step callback, and stops at the next step when every
  caller in it went away.

Concurrent text-to-image requests with the same size, step count, guidance (and whether
they have a negative prompt) are batched into one pipeline call, up to
``max_batch_images`` images (by default 4 on a GPU, and 1, no batching, on a CPU: see
:mod:`.options`) (:mod:`mmserve.engines.common.batcher`): a worker that frees takes the
waiting requests together. Each keeps its own generators, so a seed gives the
same image batched or alone (to float rounding: a batched convolution may move a pixel by a
level or two). Edits (an input image, a mask) run one request per call. A text-to-image
request for more images than one call makes, with several workers (a CPU's default), runs its
images in calls of their own side by side, image i still from seed + i.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import math
import os
import secrets
import threading
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

from mmserve.engines.base import EngineOptions, ImageEngine, PreviewCallback, ProgressCallback
from mmserve.engines.common.batcher import Batcher
from mmserve.engines.common.diffusers_utils import diffusers_class, prompt_tokens
from mmserve.engines.common.latent_preview import decode_preview, preview_steps
from mmserve.engines.common.thread_tokenizers import ThreadTokenizers
from mmserve.engines.diffusers_image.checks import Kind, check, denoising_steps, edit_strength
from mmserve.engines.diffusers_image.options import DiffusersImageOptions, concurrency_defaults
from mmserve.engines.registry import import_names, require
from mmserve.engines.types import ImageGenInput, ImageGenOutput
from mmserve.errors import EngineError, EngineUnavailableError, InvalidRequestError

log = logging.getLogger("mmserve.engines.diffusers_image")

MAX_SEED = 2**63 - 1


class _Cancelled(Exception):
    """Raised inside the step callback when every request of the call was abandoned."""


@dataclass
class _Job:
    kind: Kind
    request: ImageGenInput
    cancelled: threading.Event
    report: ProgressCallback
    show: PreviewCallback
    future: Future[ImageGenOutput] = field(default_factory=Future)


class DiffusersImageEngine(ImageEngine):
    uses_torch = True
    Options = DiffusersImageOptions
    options: DiffusersImageOptions

    _pipes: dict[str, Any]
    _batcher: Batcher[_Job] | None = None
    _size_multiple: int = 8
    _max_batch_images: int = 1
    _tokenizers: ThreadTokenizers | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def import_libraries(cls, options: EngineOptions) -> None:
        assert isinstance(options, DiffusersImageOptions)
        import_names("diffusers", "AutoPipelineForText2Image" if options.pipeline == "auto" else "DiffusionPipeline")

    def load(self) -> None:
        require("diffusers", self.card.engine)
        import diffusers
        import torch

        diffusers.utils.logging.disable_progress_bar()  # its loading bar: mmserve logs each load itself

        from mmserve.engines.common.torch_utils import resolve_device, resolve_dtype

        if self.source is None:
            raise EngineUnavailableError(f"Model '{self.card.id}' has no source.")
        opts = self.options
        self.device = resolve_device(self.device)
        self._dtype = resolve_dtype(opts.dtype, self.device)
        cls = diffusers.AutoPipelineForText2Image if opts.pipeline == "auto" else diffusers_class(opts.pipeline)
        kwargs: dict[str, Any] = {"dtype": self._dtype, "local_files_only": True}
        if opts.variant:
            kwargs["variant"] = opts.variant
        pipe = cls.from_pretrained(str(self.source), **kwargs)
        if opts.scheduler:
            pipe.scheduler = diffusers_class(opts.scheduler, kind="scheduler", option="scheduler").from_config(
                pipe.scheduler.config
            )
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self._pipes = {"text": pipe}
        if self.card.capabilities.edits:
            auto_i2i, auto_inpaint = diffusers.AutoPipelineForImage2Image, diffusers.AutoPipelineForInpainting
            self._pipes["image"] = self._derive(pipe, opts.image_to_image_pipeline, auto_i2i, "image_to_image_pipeline")
            self._pipes["inpaint"] = self._derive(pipe, opts.inpaint_pipeline, auto_inpaint, "inpaint_pipeline")
        self._size_multiple = opts.size_multiple or int(getattr(pipe, "vae_scale_factor", 8) or 8)
        batch, workers = concurrency_defaults(self.device, len(os.sched_getaffinity(0)), torch.get_num_threads())
        self._max_batch_images = opts.max_batch_images or batch
        workers = opts.parallel_generations or workers
        # parallel calls must not share a tokenizer (see thread_tokenizers); one worker can
        self._tokenizers = ThreadTokenizers(pipe.components) if workers > 1 else None
        self._batcher = Batcher(
            self._run_batch,
            key=self._batch_key,
            size=lambda job: job.request.n,
            limit=self._max_batch_images,
            workers=workers,
            name=f"img-{self.card.id}",
        )

    def _derive(self, pipe: Any, name: str, auto: Any, option: str) -> Any:
        try:
            if name == "auto":
                derived = auto.from_pipe(pipe)
            else:  # a class's from_pipe casts the shared modules to `dtype` (float32 if not given)
                derived = diffusers_class(name, option=option).from_pipe(pipe, dtype=self._dtype)
        except (ValueError, TypeError, AttributeError) as e:
            task = auto.__name__.removeprefix("AutoPipelineFor")
            raise EngineUnavailableError(
                f"Model '{self.card.id}' has capabilities.edits, but no {task} "
                f"pipeline can be derived from {type(pipe).__name__} ({e}). Name one in the card's options or set "
                "capabilities.edits to false."
            ) from None
        derived.set_progress_bar_config(disable=True)
        return derived

    def unload(self) -> None:
        from mmserve.engines.common.torch_utils import release_memory

        if self._batcher is not None:
            self._batcher.close()
        self._pipes, self._batcher = {}, None
        release_memory()

    def memory_bytes(self) -> int | None:
        from mmserve.engines.common.torch_utils import module_bytes

        pipe = getattr(self, "_pipes", {}).get("text")
        if pipe is None:
            return None
        return sum(module_bytes(m) for m in pipe.components.values() if hasattr(m, "parameters"))

    @property
    def size_multiple(self) -> int:
        return self._size_multiple

    # ------------------------------------------------------------------ generation

    async def generate(
        self,
        request: ImageGenInput,
        progress: ProgressCallback | None = None,
        preview: PreviewCallback | None = None,
    ) -> ImageGenOutput:
        batcher = self._batcher
        if not getattr(self, "_pipes", None) or batcher is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        kind = check(request, self.card.id, self.options, self._size_multiple, edits="image" in self._pipes)
        if kind == "text" and request.n > self._max_batch_images and batcher.workers > 1 and not request.partial_images:
            return await self._side_by_side(batcher, request, progress)
        return await self._submit(batcher, kind, request, progress, preview)

    async def _submit(
        self,
        batcher: Batcher[_Job],
        kind: Kind,
        request: ImageGenInput,
        progress: ProgressCallback | None,
        preview: PreviewCallback | None,
    ) -> ImageGenOutput:
        """A checked request, to the workers: its images, once a pipeline call made them."""
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()

        def report(fraction: float) -> None:
            if progress is not None and not loop.is_closed():
                loop.call_soon_threadsafe(progress, fraction)

        def show(index: int, images: list[Any]) -> None:
            if preview is not None and not loop.is_closed():
                loop.call_soon_threadsafe(preview, index, images)

        job = _Job(kind, request, cancelled, report, show)
        batcher.submit(job)
        try:
            return await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            cancelled.set()  # the worker stops at its next step
            raise
        except (InvalidRequestError, EngineError):
            raise
        except Exception as e:
            raise EngineError(f"image generation failed in '{self.card.id}'") from e

    async def _side_by_side(
        self, batcher: Batcher[_Job], request: ImageGenInput, progress: ProgressCallback | None
    ) -> ImageGenOutput:
        """A request for more images than one call makes, on several workers: its images in calls of
        ``max_batch_images`` each, side by side (a CPU's default: n calls of one, as many at once as
        there are workers). Image i still comes from seed + i; the first failure fails the request
        and stops the other calls, as a cancelled request stops them all."""
        seed = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED - 64)
        size = self._max_batch_images
        parts = [
            replace(request, n=min(size, request.n - i), seed=(seed + i) % MAX_SEED) for i in range(0, request.n, size)
        ]
        done = [0.0] * len(parts)

        def part_progress(j: int) -> ProgressCallback | None:
            if progress is None:
                return None

            def report(fraction: float) -> None:  # on the event loop: the mean of the parts
                done[j] = fraction
                progress(sum(done) / len(done))

            return report

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._submit(batcher, "text", part, part_progress(j), None))
                    for j, part in enumerate(parts)
                ]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        outs = [task.result() for task in tasks]
        first = outs[0]
        images = [image for out in outs for image in out.images]
        return ImageGenOutput(
            images=images, prompt_tokens=first.prompt_tokens, steps=first.steps, quality=first.quality, seed=seed
        )

    def _batch_key(self, job: _Job) -> Hashable | None:
        """Text-to-image requests with equal keys can share a pipeline call; None: the job runs alone."""
        r = job.request
        if job.kind != "text" or r.n > self._max_batch_images or r.partial_images:  # previews: alone
            return None
        guidance = r.guidance_scale if r.guidance_scale is not None else self.options.guidance_scale
        return (r.width, r.height, denoising_steps(r, self.options)[0], guidance, bool(r.negative_prompt))

    def _run_batch(self, jobs: list[_Job]) -> None:
        """One pipeline call for ``jobs``; if several fail together, each runs again alone (only its own fails)."""
        try:
            outputs = self._run(jobs)
        except Exception as e:
            if len(jobs) == 1:
                jobs[0].future.set_exception(e)
                return
            log.warning("a batch of %d image requests failed (%s); running them one by one", len(jobs), e)
            for job in jobs:
                self._run_batch([job])
            return
        for job, out in zip(jobs, outputs, strict=True):
            job.future.set_result(out)

    def _run(self, jobs: list[_Job]) -> list[ImageGenOutput]:
        import torch
        from PIL import Image

        kind, first = jobs[0].kind, jobs[0].request  # batched jobs share kind, size, steps and guidance
        base = self._pipes[kind]
        pipe = copy.copy(base)  # per-call state lives on the pipeline, its scheduler and its tokenizers
        pipe.scheduler = copy.deepcopy(base.scheduler)
        if self._tokenizers is not None:
            for name, tokenizer in self._tokenizers.for_this_thread().items():
                setattr(pipe, name, tokenizer)
        accepted = set(inspect.signature(pipe.__call__).parameters)
        steps, quality = denoising_steps(first, self.options)
        seeds = [j.request.seed if j.request.seed is not None else secrets.randbelow(MAX_SEED - 64) for j in jobs]
        # one prompt and one generator per image: image i of a request from its seed + i
        kwargs: dict[str, Any] = {
            "prompt": [j.request.prompt for j in jobs for _ in range(j.request.n)],
            "num_images_per_prompt": 1,
            "generator": [
                torch.Generator("cpu").manual_seed((seed + i) % MAX_SEED)
                for j, seed in zip(jobs, seeds, strict=True)
                for i in range(j.request.n)
            ],
            "output_type": "pil",
        }
        guidance = first.guidance_scale if first.guidance_scale is not None else self.options.guidance_scale
        if guidance is not None:
            kwargs["guidance_scale"] = guidance
        if first.negative_prompt:
            if "negative_prompt" not in accepted:
                raise InvalidRequestError(
                    f"The model '{self.card.id}' ({type(pipe).__name__}) does not take a negative_prompt.",
                    param="negative_prompt",
                )
            kwargs["negative_prompt"] = [j.request.negative_prompt or "" for j in jobs for _ in range(j.request.n)]
        if len(jobs) == 1 and first.n > 1:  # one request's images: its prompts encoded once, not n times
            kwargs["prompt"], kwargs["num_images_per_prompt"] = first.prompt, first.n
            if "negative_prompt" in kwargs:
                kwargs["negative_prompt"] = first.negative_prompt
        size = (first.width, first.height)
        if "height" in accepted:
            kwargs["height"], kwargs["width"] = first.height, first.width
        init: list[Any] = []
        mask = None
        if kind != "text":  # edits run alone
            init = [im.convert("RGB").resize(size, Image.Resampling.LANCZOS) for im in first.images]
            kwargs["image"] = init if len(init) > 1 else init[0]
            strength = edit_strength(kind, first, self.options)
            kwargs["strength"] = strength
            steps = max(steps, math.ceil(1 / strength))  # at least one denoising step runs
            if first.mask is not None:
                mask = first.mask.convert("L").resize(size, Image.Resampling.NEAREST)
                kwargs["mask_image"] = mask
        kwargs["num_inference_steps"] = steps

        previews: list[int] | None = None  # the steps after which a preview is decoded

        def on_step(p: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            nonlocal previews
            if all(j.cancelled.is_set() for j in jobs):
                raise _Cancelled
            total = max(1, int(getattr(p, "num_timesteps", 0) or steps))
            for j in jobs:
                j.report(min(1.0, (i + 1) / total) * 0.95)  # the rest is the VAE decode
            if previews is None:  # a request with partial images runs alone (see _batch_key)
                previews = preview_steps(total, first.partial_images) if len(jobs) == 1 else []
            if i in previews and "latents" in tensors:
                jobs[0].show(previews.index(i), decode_preview(p, tensors["latents"], first.height, first.width))
            return tensors

        if "callback_on_step_end" in accepted:
            kwargs["callback_on_step_end"] = on_step
        for j in jobs:
            j.report(0.0)
        with torch.inference_mode():
            images = list(pipe(**kwargs).images)
        if mask is not None and self.options.paste_unmasked:
            keep = mask.point(lambda v: 255 if v >= 128 else 0)  # the pipeline binarizes the mask the same way
            images = [Image.composite(im.convert("RGB"), init[0], keep) for im in images]
        outputs = []
        for j, seed in zip(jobs, seeds, strict=True):
            mine, images = images[: j.request.n], images[j.request.n :]
            j.report(1.0)
            tokens = prompt_tokens(pipe, j.request.prompt)
            outputs.append(ImageGenOutput(images=mine, prompt_tokens=tokens, steps=steps, quality=quality, seed=seed))
        return outputs
