"""Text-to-video and image-to-video on diffusers video pipelines (Wan, CogVideoX, LTX, HunyuanVideo...).

Loads the pipeline saved in ``source`` (``model_index.json`` names its class, or
``options.pipeline`` does). Image-to-video reuses the same loaded components in the
companion pipeline class (``WanPipeline`` -> ``WanImageToVideoPipeline``, ...), so one set
of weights serves both when the model supports it (Wan 2.2 TI2V, and the demo model).

Frame counts: video pipelines make ``k * frame_multiple + 1`` frames (Wan's VAE compresses
time 4x and keeps the first frame: 4k+1). A request for ``seconds * fps`` frames is rounded
*up* to the next such count and the extra frames are dropped, so the video holds exactly
the requested number of frames (4 s at 16 fps: 65 generated, 64 kept) and lasts exactly
``seconds``.

Concurrency: a pipeline keeps per-call state in its scheduler, and Wan's causal VAE keeps
its frame cache on the module itself (two overlapping decodes corrupt each other: measured,
the outputs differ from serial runs). So each call runs on its own light pipeline object
with the shared text encoder and transformer, a fresh scheduler, its worker thread's own
tokenizer (tokenizers keep padding settings on the object, see
:mod:`mmserve.engines.common.thread_tokenizers`) and a VAE of its own (the loaded one, or a copy
made once per extra concurrent call), in up to ``deployment.max_concurrency`` worker
threads; with ``cpu_offload`` calls run one at a time.
Every call is seeded by its own ``torch.Generator``; nothing touches the global RNG.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import math
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import Field

from mmserve.engines.base import CheckpointCallback, EngineOptions, ProgressCallback, VideoEngine
from mmserve.engines.common.diffusers_utils import diffusers_class
from mmserve.engines.common.thread_tokenizers import ThreadTokenizers
from mmserve.engines.registry import import_names, require
from mmserve.engines.types import VideoGenInput, VideoGenOutput
from mmserve.errors import EngineError, EngineUnavailableError, InvalidRequestError

log = logging.getLogger("mmserve.engines.diffusers_video")

# text-to-video class -> its image-to-video companion (same components)
IMAGE_TO_VIDEO = {
    "WanPipeline": "WanImageToVideoPipeline",
    "CogVideoXPipeline": "CogVideoXImageToVideoPipeline",
    "LTXPipeline": "LTXImageToVideoPipeline",
    "HunyuanVideoPipeline": "HunyuanVideoImageToVideoPipeline",
}
DType = Literal["auto", "float32", "bfloat16", "float16"]
DENOISE_SHARE = 0.8  # of the engine's progress; the VAE decode (and any upscaling) is the rest
UPSCALE_FROM = 0.95


class DiffusersVideoOptions(EngineOptions):
    dtype: DType = "auto"
    vae_dtype: DType = Field(default="float32", description="Wan and most video VAEs decode best in float32.")
    pipeline: str | None = Field(default=None, description="diffusers class; default: the one in model_index.json.")
    image_pipeline: str | None = Field(default=None, description="diffusers class for image-to-video.")
    steps: int = Field(default=50, ge=1, le=1000)
    guidance_scale: float = Field(default=5.0, ge=0.0, le=50.0)
    negative_prompt: str | None = None
    size_multiple: int = Field(default=16, ge=1, description="Width and height must be multiples of this.")
    frame_multiple: int = Field(default=4, ge=1, description="The pipeline makes k * frame_multiple + 1 frames.")
    max_frames: int = Field(
        default=361,  # a bound for cards that list no fps: 12 s at 30 fps; raise it for longer clips
        ge=1,
        description="Most frames one call may generate (default 361: 12 s at 30 fps).",
    )
    max_pixels: int | None = Field(default=None, ge=1, description="Largest width * height.")
    render_max_pixels: int | None = Field(
        default=None,
        ge=256,
        description="Generate frames of at most this many pixels (the requested aspect, sides multiples of "
        "size_multiple) and upscale them (Lanczos) to the requested size. None: generate at the requested size. "
        "For CPU demos and previews: a tiny Wan at 1280x720 takes minutes per second of video here.",
    )
    max_sequence_length: int | None = Field(default=None, ge=1, description="Prompt tokens (pipeline default).")
    cpu_offload: bool = Field(default=False, description="CUDA: keep idle components in CPU memory.")
    vae_tiling: bool = Field(default=False, description="Decode in tiles (large sizes on small GPUs).")


def render_size(width: int, height: int, max_pixels: int | None, multiple: int) -> tuple[int, int]:
    """The size frames are generated at: the requested one, or scaled down (aspect kept) under ``max_pixels``."""
    if max_pixels is None or width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return (
        max(multiple, int(width * scale) // multiple * multiple),
        max(multiple, int(height * scale) // multiple * multiple),
    )


def pipeline_frames(num_frames: int, frame_multiple: int) -> int:
    """The smallest ``k * frame_multiple + 1`` that is at least ``num_frames``."""
    return max(0, math.ceil((num_frames - 1) / frame_multiple)) * frame_multiple + 1


class DiffusersVideoEngine(VideoEngine):
    uses_torch = True
    Options = DiffusersVideoOptions
    options: DiffusersVideoOptions

    pipe: Any = None
    _t2v: Any = None  # pipeline classes
    _i2v: Any = None
    _pool: ThreadPoolExecutor | None = None
    _vaes: queue.SimpleQueue[Any] | None = None  # idle VAEs, one per concurrent call at most
    _tokenizers: ThreadTokenizers | None = None

    # ------------------------------------------------------------------ validation (before queueing)

    @classmethod
    def check_request(cls, options: EngineOptions, request: VideoGenInput) -> None:
        assert isinstance(options, DiffusersVideoOptions)
        width, height, num_frames = request.width, request.height, request.num_frames
        m = options.size_multiple
        if width % m or height % m:
            raise InvalidRequestError(
                f"The size {width}x{height} is not supported: width and height must be multiples of {m} "
                f"(e.g. {max(m, width // m * m)}x{max(m, height // m * m)}).",
                param="size",
                code="invalid_size",
            )
        if options.max_pixels and width * height > options.max_pixels:
            raise InvalidRequestError(
                f"The size {width}x{height} is larger than this model allows ({options.max_pixels} pixels).",
                param="size",
                code="invalid_size",
            )
        if pipeline_frames(num_frames, options.frame_multiple) > options.max_frames:
            raise InvalidRequestError(
                f"{num_frames} frames is more than this model makes in one clip ({options.max_frames}); "
                "ask for fewer seconds or a lower fps.",
                param="seconds",
                code="invalid_duration",
            )

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def import_libraries(cls, options: EngineOptions) -> None:
        import_names("diffusers", "DiffusionPipeline")

    def load(self) -> None:
        require("diffusers", self.card.engine)
        import diffusers

        diffusers.utils.logging.disable_progress_bar()  # its loading bar: mmserve logs each load itself

        from mmserve.engines.common.torch_utils import resolve_device, resolve_dtype

        if self.source is None:
            raise EngineUnavailableError(f"Model '{self.card.id}' has no source.")
        o = self.options
        device = resolve_device(self.device)
        dtype = resolve_dtype(o.dtype, device)
        cls = diffusers_class(o.pipeline) if o.pipeline else diffusers.DiffusionPipeline
        pipe = cls.from_pretrained(
            str(self.source), dtype={"default": dtype, "vae": resolve_dtype(o.vae_dtype, device)}
        )
        if o.cpu_offload and device.startswith("cuda"):
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        if o.vae_tiling and hasattr(pipe, "vae") and hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()
        pipe.set_progress_bar_config(disable=True)
        name = type(pipe).__name__
        if "ImageToVideo" in name:
            self._i2v = type(pipe)
        else:
            self._t2v = type(pipe)
            i2v_name = o.image_pipeline or IMAGE_TO_VIDEO.get(name)
            self._i2v = diffusers_class(i2v_name, option="image_pipeline") if i2v_name else None
        if self.card.capabilities.image_to_video and self._i2v is None:
            raise EngineUnavailableError(
                f"Model '{self.card.id}' claims image_to_video but {name} has no known image-to-video "
                "companion; set options.image_pipeline."
            )
        self.pipe = pipe
        self._vaes = queue.SimpleQueue()
        self._vaes.put(pipe.vae)
        workers = 1 if o.cpu_offload else self.card.deployment.concurrency() * self.card.deployment.replicas
        self._tokenizers = ThreadTokenizers(pipe.components) if workers > 1 else None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"video-{self.card.id}")

    def unload(self) -> None:
        from mmserve.engines.common.torch_utils import release_memory

        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self.pipe = None
        self._vaes = None
        release_memory()

    def memory_bytes(self) -> int | None:
        if self.pipe is None:
            return None
        from mmserve.engines.common.torch_utils import module_bytes

        return sum(module_bytes(c) for c in self.pipe.components.values() if hasattr(c, "parameters"))

    # ------------------------------------------------------------------ generation

    async def generate(
        self,
        request: VideoGenInput,
        progress: ProgressCallback | None = None,
        checkpoint: CheckpointCallback | None = None,
    ) -> VideoGenOutput:
        if self._pool is None or self.pipe is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._generate, request, progress)

    def _generate(self, request: VideoGenInput, progress: ProgressCallback | None) -> VideoGenOutput:
        import numpy as np
        import torch

        o = self.options
        cls = self._i2v if request.image is not None else self._t2v
        if cls is None:
            raise InvalidRequestError(f"The model '{self.card.id}' needs an input_reference image.")
        steps = request.steps or o.steps
        width, height = render_size(request.width, request.height, o.render_max_pixels, o.size_multiple)
        frames_made = pipeline_frames(request.num_frames, o.frame_multiple)
        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "width": width,
            "height": height,
            "num_frames": frames_made,
            "num_inference_steps": steps,
            "guidance_scale": o.guidance_scale if request.guidance_scale is None else request.guidance_scale,
            # a CPU generator gives the same noise on every device for a given seed
            "generator": torch.Generator("cpu").manual_seed(request.seed if request.seed is not None else 0),
            "output_type": "np",
        }
        negative = request.negative_prompt or o.negative_prompt
        if negative:
            kwargs["negative_prompt"] = negative
        if o.max_sequence_length:
            kwargs["max_sequence_length"] = o.max_sequence_length
        if request.image is not None:
            kwargs["image"] = request.image
        raised: list[BaseException] = []
        upscale = (width, height) != (request.width, request.height)
        # progress: denoising, then the VAE decoding latent frame by latent frame, then any upscaling
        done_at = UPSCALE_FROM if upscale else 1.0

        def report(fraction: float) -> None:
            if progress is None:
                return
            try:
                progress(fraction)
            except BaseException as e:  # the caller's (cancellation): re-raised as is below
                raised.append(e)
                raise

        def on_step(_pipe: Any, step: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            report(DENOISE_SHARE * (step + 1) / steps)
            return tensors

        kwargs["callback_on_step_end"] = on_step
        latent_frames = (frames_made - 1) // o.frame_multiple + 1
        decoded = [0]

        def on_decoded(*_: Any) -> None:  # Wan's VAE decodes one latent frame per decoder call
            decoded[0] += 1
            report(DENOISE_SHARE + (done_at - DENOISE_SHARE) * min(1.0, decoded[0] / latent_frames))

        vae = self._take_vae()
        hook = vae.decoder.register_forward_hook(on_decoded) if hasattr(vae, "decoder") else None
        try:
            with torch.inference_mode():
                out = self._view(cls, vae)(**kwargs)
        except Exception as e:
            if raised:
                raise raised[0] from None
            if isinstance(e, torch.OutOfMemoryError | MemoryError):
                raise EngineError(
                    f"out of memory making {request.width}x{request.height}x{request.num_frames}", code="out_of_memory"
                ) from e
            raise EngineError(f"{type(e).__name__} in {cls.__name__}: {e}") from e
        finally:
            if hook is not None:
                hook.remove()
            if self._vaes is not None:
                self._vaes.put(vae)
        frames = np.asarray(out.frames[0])[: request.num_frames]
        if frames.dtype != np.uint8:
            frames = (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        if upscale:
            frames = _upscale(
                frames, request.width, request.height, lambda f: report(UPSCALE_FROM + (1 - UPSCALE_FROM) * f)
            )
            if raised:
                raise raised[0]
        return VideoGenOutput(frames=frames, fps=request.fps)

    def _take_vae(self) -> Any:
        assert self._vaes is not None
        try:
            return self._vaes.get_nowait()
        except queue.Empty:
            return copy.deepcopy(self.pipe.vae)  # another call holds the others

    def _view(self, cls: Any, vae: Any) -> Any:
        """A pipeline of class ``cls`` over the loaded components, with its own scheduler and VAE."""
        params = inspect.signature(cls.__init__).parameters
        kwargs = {k: v for k, v in self.pipe.components.items() if k in params}
        kwargs["scheduler"] = self.pipe.scheduler.from_config(self.pipe.scheduler.config)
        kwargs["vae"] = vae
        if self._tokenizers is not None:  # parallel calls must not share a tokenizer (see thread_tokenizers)
            kwargs.update({k: t for k, t in self._tokenizers.for_this_thread().items() if k in params})
        for key, value in self.pipe.config.items():
            if key in params and key not in kwargs and not key.startswith("_"):
                kwargs[key] = value
        view = cls(**kwargs)
        view.set_progress_bar_config(disable=True)
        return view


def _upscale(frames: Any, width: int, height: int, report: Callable[[float], None]) -> Any:
    """Frames (T, h, w, 3) uint8 -> (T, height, width, 3), each resized with Lanczos."""
    import numpy as np
    from PIL import Image

    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.LANCZOS))
        report((i + 1) / len(frames))
    return out
