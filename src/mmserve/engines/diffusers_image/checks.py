"""A request's checks against the card and the loaded pipelines, on the caller's side (cheap: a bad
request never takes a worker), and the steps and strength its pipeline call runs with."""

from __future__ import annotations

from typing import Literal

from mmserve.engines.diffusers_image.options import DiffusersImageOptions
from mmserve.engines.types import ImageGenInput
from mmserve.errors import InvalidRequestError, ModelCapabilityError

Kind = Literal["text", "image", "inpaint"]


def check(
    request: ImageGenInput, model: str, options: DiffusersImageOptions, size_multiple: int, *, edits: bool
) -> Kind:
    """The pipeline ``request`` needs (text-to-image, image-to-image or inpainting), or a 4xx error."""
    m = size_multiple
    if request.width % m or request.height % m:
        w, h = (max(m, (s + m // 2) // m * m) for s in (request.width, request.height))
        raise InvalidRequestError(
            f"The model '{model}' makes images whose sides are multiples of {m} pixels; "
            f"{request.width}x{request.height} is not (try {w}x{h}).",
            param="size",
        )
    if request.steps is not None and request.steps > options.max_steps:
        raise InvalidRequestError(
            f"steps is {request.steps}; the model '{model}' allows at most {options.max_steps}.",
            param="steps",
            code="model_limit",
        )
    if not request.images:
        if request.mask is not None:
            raise InvalidRequestError("A mask needs an image to edit.", param="mask")
        return "text"
    if not edits:
        raise ModelCapabilityError(
            f"The model '{model}' does not edit images (capabilities.edits is false).", param="image"
        )
    limit = options.max_input_images
    if len(request.images) > limit:
        raise InvalidRequestError(
            f"The model '{model}' edits {limit} image{'s' if limit > 1 else ''} per request; "
            f"{len(request.images)} were sent.",
            param="image",
        )
    if request.mask is not None and request.mask.size != request.images[0].size:
        raise InvalidRequestError(
            f"The mask is {request.mask.size[0]}x{request.mask.size[1]} but the image is "
            f"{request.images[0].size[0]}x{request.images[0].size[1]}; they must be the same size.",
            param="mask",
        )
    kind: Kind = "inpaint" if request.mask is not None else "image"
    # an edit runs int(steps * strength) steps; the engine raises steps to at least ceil(1 / strength)
    if edit_strength(kind, request, options) * options.max_steps < 1:
        raise InvalidRequestError(
            f"strength {request.strength:g} is too small: no denoising step would run within the model's "
            f"{options.max_steps} steps. Use a strength of at least {1 / options.max_steps:.3g}.",
            param="strength",
            code="model_limit",
        )
    return kind


def edit_strength(kind: Kind, request: ImageGenInput, options: DiffusersImageOptions) -> float:
    if request.strength is not None:
        return request.strength
    return options.inpaint_strength if kind == "inpaint" else options.image_to_image_strength


def denoising_steps(request: ImageGenInput, options: DiffusersImageOptions) -> tuple[int, str | None]:
    """(steps, the quality level they come from; None when the request set the steps)."""
    if request.steps is not None:
        return request.steps, None
    quality = request.quality if request.quality in ("low", "medium", "high") else options.default_quality
    return int(getattr(options.quality_steps, quality)), quality
