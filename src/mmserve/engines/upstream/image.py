"""Image generations and edits on a third-party provider (``POST /images/generations``, ``/images/edits``).

Edits send the images mmserve already decoded and bounded (PNG, re-encoded: the provider never
sees the client's bytes) and the mask as OpenAI takes it (a PNG whose transparent pixels are the
area to repaint). The provider's images come back as base64 or links (fetched SSRF-safely, see
:mod:`.files`) and its usage (``input_tokens``, ``output_tokens``) is what mmserve meters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
from typing import Any, Literal

from PIL import Image as PILImage
from PIL.Image import Image
from pydantic import Field

from mmserve.engines.base import EngineOptions, ImageEngine, ProgressCallback
from mmserve.engines.types import ImageGenInput, ImageGenOutput
from mmserve.engines.upstream.base import UpstreamEngine
from mmserve.engines.upstream.files import ProviderFiles
from mmserve.engines.upstream.options import UpstreamOptions
from mmserve.errors import InvalidRequestError

OUTPUT_FORMATS = ("png", "jpeg", "webp")


class UpstreamImageOptions(UpstreamOptions):
    response_format: Literal["b64_json", "url"] | None = Field(
        default=None, description="Asked of the provider when set (gpt-image models only answer b64_json)."
    )
    send_output_format: bool = Field(
        default=True,
        description="Ask the provider for the client's output_format (and compression), so its files pass as they "
        "are; false for providers without the field (mmserve converts their PNGs).",
    )
    transparency: bool = Field(default=False, description="The provider makes transparent backgrounds.")
    download_timeout_s: float = Field(default=60.0, gt=0, description="Longest fetch of an image link it returns.")


class UpstreamImageEngine(UpstreamEngine, ImageEngine):
    Options = UpstreamImageOptions
    options: UpstreamImageOptions
    _files: ProviderFiles | None = None

    @classmethod
    def check_request(cls, options: EngineOptions, request: ImageGenInput) -> None:
        assert isinstance(options, UpstreamImageOptions)
        if request.transparent_background and not options.transparency:
            raise InvalidRequestError(
                "This model's provider does not make transparent backgrounds (its card sets no "
                "options.transparency). Use background 'auto' or 'opaque'.",
                param="background",
                code="unsupported_background",
            )

    @property
    def files(self) -> ProviderFiles:
        if self._files is None:
            limits = self.media.limits_for(self.card.limits)
            self._files = ProviderFiles(
                self.upstream, self.media, max_bytes=limits.max_bytes, timeout_s=self.options.download_timeout_s
            )
        return self._files

    async def generate(
        self, request: ImageGenInput, progress: ProgressCallback | None = None, preview: Any = None
    ) -> ImageGenOutput:
        fields = self._fields(request)
        if request.images:
            parts = await asyncio.to_thread(_edit_files, request)
            data = {k: str(v) for k, v in fields.items()}
            answer = await self.upstream.request_json("POST", "/images/edits", data=data, files=parts)
        else:
            answer = await self.upstream.request_json("POST", "/images/generations", json=fields)
        return await self._output(request, answer)

    def _fields(self, request: ImageGenInput) -> dict[str, Any]:
        opts = self.options
        body: dict[str, Any] = {
            "model": self.remote_model,
            "prompt": request.prompt,
            "n": request.n,
            "size": f"{request.width}x{request.height}",
        }
        optional = {
            "quality": request.quality,
            "seed": request.seed,
            "negative_prompt": request.negative_prompt,
            "steps": request.steps,
            "guidance_scale": request.guidance_scale,
            "strength": request.strength,
            "response_format": opts.response_format,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if request.transparent_background:
            body["background"] = "transparent"
        if opts.send_output_format and request.output_format:
            body["output_format"] = request.output_format
            if request.output_compression is not None and request.output_format != "png":
                body["output_compression"] = request.output_compression
        return body

    async def _output(self, request: ImageGenInput, answer: dict[str, Any]) -> ImageGenOutput:
        items = answer.get("data")
        if not isinstance(items, list) or not items:
            raise self.upstream.bad_response("an answer without images")
        files = self.files
        blobs = await asyncio.gather(*(files.item(item, "an image") for item in items[: request.n]))
        fmt = request.output_format or "png"
        limits = dataclasses.replace(self.media.limits_for(self.card.limits), formats=OUTPUT_FORMATS)
        usage = answer.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        out = ImageGenOutput(
            images=[],
            prompt_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            seed=request.seed,
        )
        if all(files.passes_as_is(b, fmt, limits) for b in blobs):
            out.encoded = list(blobs)
        else:
            keep = request.transparent_background
            out.images = list(await asyncio.gather(*(files.decode_image(b, limits, keep_alpha=keep) for b in blobs)))
        return out


def _edit_files(request: ImageGenInput) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The multipart files of an edit: the images (``image``, or ``image[]`` for several) and the mask."""
    name = "image" if len(request.images) == 1 else "image[]"
    parts = [(name, (f"image-{i}.png", _png(img), "image/png")) for i, img in enumerate(request.images)]
    if request.mask is not None:
        # mmserve's mask: white = repaint; OpenAI's: transparent = repaint
        alpha = request.mask.convert("L").point(lambda v: 255 - v)
        rgba = PILImage.new("RGBA", request.mask.size, (0, 0, 0, 255))
        rgba.putalpha(alpha)
        parts.append(("mask", ("mask.png", _png(rgba), "image/png")))
    return parts


def _png(img: Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
