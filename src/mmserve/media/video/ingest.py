"""The entry point for user videos (chat ``video_url`` parts): data URI or http(s) URL -> sampled frames.

As for images: only cheap checks on the event loop (the data URI's shape and length, the
card's link policy), links fetched by the SSRF-safe fetcher, base64 and the video decoded in
the isolated decode worker (:mod:`mmserve.media.video.decode`) with the video's own time limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mmserve.errors import InvalidRequestError, MediaFetchError
from mmserve.media.datauri import split_data_uri
from mmserve.media.decodejob import DecodeJob, VideoSpec
from mmserve.media.image.decode import ImageInputSize
from mmserve.media.image.ingest import CardImageLimits, MediaIngestor
from mmserve.media.video.decode import VIDEO_FORMATS, DecodedVideo, FrameSampling, VideoLimits

_GENERIC_MIMES = {"application/octet-stream", "binary/octet-stream"}


class CardVideoLimits(CardImageLimits, Protocol):
    """What the media layer reads of a card's limits for video input (``cards.Limits`` has it all)."""

    @property
    def max_input_video_seconds(self) -> float: ...
    @property
    def video_fps(self) -> float: ...
    @property
    def max_video_frames(self) -> int: ...


@dataclass
class VideoRef:
    url: str
    param: str = "video_url"


class VideoIngestor:
    """Videos through the same fetcher and decode workers as the images of ``media``."""

    def __init__(self, media: MediaIngestor) -> None:
        self.media = media
        self.settings = media.settings

    def limits_for(self, card: CardVideoLimits) -> VideoLimits:
        lim = self.settings.limits
        return VideoLimits(
            max_bytes=lim.max_data_uri_bytes,
            max_seconds=min(card.max_input_video_seconds, lim.max_input_video_seconds),
            max_side=lim.max_video_side,
            max_pixels=lim.max_video_pixels,
            max_decoded_frames=lim.max_video_decoded_frames,
            timeout_s=lim.video_decode_timeout_s,
        )

    async def load_video(
        self, ref: VideoRef, card: CardVideoLimits, *, model: str, input_size: ImageInputSize | None = None
    ) -> DecodedVideo:
        url, param = ref.url.strip(), ref.param
        limits = self.limits_for(card)
        spec = VideoSpec(limits, FrameSampling(card.video_fps, card.max_video_frames, input_size=input_size))
        image_limits = self.media.limits_for(card)
        lowered = url[:8].lower()
        if lowered.startswith("data:"):
            encoded = split_data_uri(url, param=param, max_bytes=limits.max_bytes)
            mime = encoded.mime
            if mime is not None and not mime.startswith("video/") and mime not in _GENERIC_MIMES:
                raise InvalidRequestError(
                    f"The data URI has type '{mime[:64]}', not a video. Send data:video/mp4, video/webm or "
                    "video/quicktime" + (" (images go in image_url parts)." if mime.startswith("image/") else "."),
                    param=param,
                    code="invalid_video_url",
                )
            job = DecodeJob(encoded.ascii_payload(), image_limits, param, base64=True, video=spec)
            return _video(await self.media.decoder.decode(job))
        if lowered.startswith(("http://", "https://")):
            if not card.allow_image_urls:
                raise MediaFetchError(
                    f"The model '{model}' does not accept media links; send the video base64-encoded as a data URI "
                    "('data:video/mp4;base64,...').",
                    param=param,
                    code="image_urls_disabled",
                )
            fetched = await self.media.fetcher.fetch(url, param=param, max_bytes=limits.max_bytes)
            return _video(await self.media.decoder.decode(DecodeJob(fetched.data, image_limits, param, video=spec)))
        message = "The video URL must be an http(s) URL or a data URI." if url else "The video URL is empty."
        raise InvalidRequestError(
            f"{message} Send a {VIDEO_FORMATS} video as an http(s) URL or a data URI like 'data:video/mp4;base64,...'.",
            param=param,
            code="invalid_video_url",
        )

    async def load_videos(
        self, refs: Sequence[VideoRef], card: CardVideoLimits, *, model: str, input_size: ImageInputSize | None = None
    ) -> list[DecodedVideo]:
        return [await self.load_video(r, card, model=model, input_size=input_size) for r in refs]


def _video(result: object) -> DecodedVideo:
    assert isinstance(result, DecodedVideo), "a video job decodes to a video"
    return result
