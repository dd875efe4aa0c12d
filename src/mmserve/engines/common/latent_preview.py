"""Preview images of a diffusion run in progress, decoded from its intermediate latents.

What streaming ``partial_images`` shows: at chosen denoising steps the current latents go
through the pipeline's own VAE and image post-processor, as the final image does. Early
previews are noisy (the latents are still mostly noise); the last one is close to the result.
"""

from __future__ import annotations

from typing import Any


def preview_steps(total: int, count: int) -> list[int]:
    """The 0-based steps after which to decode ``count`` previews of a ``total``-step run, evenly spread.

    At most ``total - 1`` (the last step makes the final image, not a preview); may be fewer than asked.
    """
    count = max(0, min(count, total - 1))
    return sorted({max(0, round((j + 1) * total / (count + 1)) - 1) for j in range(count)})


def decode_preview(pipe: Any, latents: Any, height: int, width: int) -> list[Any]:
    """Latents of a batch -> PIL images, through the pipeline's VAE (SD/SDXL/SD3-style; Flux's packed latents too)."""
    import torch

    vae = pipe.vae
    lat = latents
    if hasattr(pipe, "_unpack_latents"):  # Flux packs 2x2 patches into the sequence
        lat = pipe._unpack_latents(lat, height, width, pipe.vae_scale_factor)
    scaling = getattr(vae.config, "scaling_factor", 1.0) or 1.0
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    with torch.inference_mode():
        decoded = vae.decode(lat.to(vae.dtype) / scaling + shift, return_dict=False)[0]
    return list(pipe.image_processor.postprocess(decoded, output_type="pil"))
