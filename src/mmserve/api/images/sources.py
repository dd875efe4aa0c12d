"""The input images of an edit or a variation, however they came: uploaded files or JSON ``image_url`` references.

Every one is decoded by the media layer (the isolated decode workers, the SSRF-safe fetcher
for http(s) links) with its alpha channel when the edit needs it; errors name the part
(``image``, ``image[1]``, ``images[0].image_url``, ``mask.image_url``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from PIL.Image import Image

from mmserve.api.images.multipart import EditForm, Upload
from mmserve.api.images.protocol import ImageEditJSONRequest, ImageInput
from mmserve.api.state import AppState
from mmserve.cards import ModelCard
from mmserve.errors import InvalidRequestError
from mmserve.media.image.decode import flatten_alpha
from mmserve.media.image.ingest import ImageRef
from mmserve.media.image.masks import mask_from_image, transparency_mask

Source = Upload | ImageRef


@dataclass
class EditSources:
    images: list[Source] = field(default_factory=list)
    mask: Source | None = None
    #: OpenAI's rule: without a mask, the one image's transparent pixels are the area to edit
    #: (edits); a variation redraws the whole image.
    inpaint_transparency: bool = True

    @classmethod
    def from_form(cls, form: EditForm) -> EditSources:
        return cls(list(form.images), form.mask)

    @classmethod
    def from_json(cls, req: ImageEditJSONRequest) -> EditSources:
        n = len(req.images)
        images: list[Source] = [_ref(img, "images" if n == 1 else f"images[{i}]") for i, img in enumerate(req.images)]
        return cls(images, _ref(req.mask, "mask") if req.mask is not None else None)


def _ref(item: ImageInput, param: str) -> ImageRef:
    if item.file_id is not None:
        raise InvalidRequestError(
            f"'{param}.file_id' is not supported (mmserve has no Files API): send the image as "
            '{"image_url": "data:image/png;base64,..."} or an http(s) URL.',
            param=f"{param}.file_id",
        )
    if not item.image_url:
        raise InvalidRequestError(f"'{param}' needs 'image_url'.", param=f"{param}.image_url")
    return ImageRef(item.image_url, param=f"{param}.image_url")


async def decode_sources(state: AppState, card: ModelCard, sources: EditSources) -> tuple[list[Image], Image | None]:
    """The images (RGB) and the repaint mask (mode L, or None) of an edit, bounded by the card's limits."""
    media = state.media
    limits = media.limits_for(card.limits)
    budget = media.budget_for(card.limits)  # all the images of this request together
    own_alpha = sources.inpaint_transparency and sources.mask is None and len(sources.images) == 1

    async def load(src: Source, keep_alpha: bool) -> Image:
        if isinstance(src, Upload):
            return await media.decode(
                src.data, limits, param=src.param, target_side=None, keep_alpha=keep_alpha, budget=budget
            )
        return await media.load_image(src, card.limits, model=card.id, keep_alpha=keep_alpha, budget=budget)

    images = list(await asyncio.gather(*(load(s, own_alpha) for s in sources.images)))
    mask = None
    if sources.mask is not None:
        mask = mask_from_image(await load(sources.mask, True))
        if mask.size != images[0].size:
            raise InvalidRequestError(
                f"The mask is {mask.size[0]}x{mask.size[1]} but the image is {images[0].size[0]}x"
                f"{images[0].size[1]}; they must be the same size.",
                param=_param(sources.mask),
            )
    elif own_alpha:
        mask = transparency_mask(images[0])
        images[0] = flatten_alpha(images[0])
    return images, mask


def _param(src: Source) -> str:
    return src.param.removesuffix(".image_url")
