"""The media parts of a chat request: found, checked against the card, decoded, and turned into engine parts.

- ``image_url``: decoded and bounded by the media layer, downscaled to the model's input size.
- ``video_url``: decoded in the isolated decode worker; ``limits.video_fps`` frames per second
  (at most ``limits.max_video_frames``, spread evenly) go to the model as images, in place of
  the part, for cards with ``capabilities.video`` (vision-language models without a video
  processor see a video as its sampled frames; their tokens are counted as video tokens).
- ``input_audio``: base64 WAV or MP3 decoded by the same audio ingestion as transcriptions
  (16 kHz mono, the card's ``limits.max_audio_seconds``), for cards with
  ``capabilities.audio_input`` (audio-language models); others refuse it, naming the capability
  and the catalog's models that hear.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL.Image import Image

from mmserve.api.chat.protocol import AudioPart, ImagePart, Message, TextPart, VideoPart
from mmserve.api.state import AppState
from mmserve.cards import ModelCard
from mmserve.engines.types import ChatMessage, ChatPart
from mmserve.errors import InvalidRequestError, ModelCapabilityError, PayloadTooLargeError
from mmserve.media.audio.decode import DecodedAudio
from mmserve.media.audio.ingest import AudioIngestor
from mmserve.media.datauri import decode_base64, split_data_uri
from mmserve.media.image.decode import ImageInputSize
from mmserve.media.image.ingest import ImageRef
from mmserve.media.video.decode import DecodedVideo
from mmserve.media.video.ingest import VideoIngestor, VideoRef


@dataclass
class MediaRefs:
    """Every media part of the messages, with the ``param`` that names it in errors."""

    images: list[tuple[ImagePart, str]] = field(default_factory=list)
    videos: list[tuple[VideoPart, str]] = field(default_factory=list)
    audios: list[tuple[AudioPart, str]] = field(default_factory=list)


@dataclass
class LoadedMedia:
    images: list[Image] = field(default_factory=list)
    videos: list[DecodedVideo] = field(default_factory=list)
    audios: list[DecodedAudio] = field(default_factory=list)

    @property
    def audio_seconds(self) -> float:
        return sum(a.duration for a in self.audios)

    @property
    def video_frames(self) -> int:
        return sum(len(v.frames) for v in self.videos)


def media_refs(messages: list[Message]) -> MediaRefs:
    refs = MediaRefs()
    for mi, m in enumerate(messages):
        if isinstance(m.content, list):
            for pi, part in enumerate(m.content):
                where = f"messages[{mi}].content[{pi}]"
                if isinstance(part, ImagePart):
                    refs.images.append((part, f"{where}.image_url"))
                elif isinstance(part, VideoPart):
                    refs.videos.append((part, f"{where}.video_url"))
                elif isinstance(part, AudioPart):
                    refs.audios.append((part, f"{where}.input_audio"))
    return refs


def check_media(state: AppState, card: ModelCard, refs: MediaRefs) -> None:
    """Refuse, before anything is decoded, media this card does not take (naming the part and the flag)."""
    caps, limits = card.capabilities, state.settings.limits
    if refs.images and not caps.vision:
        raise ModelCapabilityError(
            f"The model '{card.id}' does not accept images (its card has capabilities.vision / "
            "multimodal_enabled set to false). Remove the image parts or use a vision model.",
            param=refs.images[0][1],
        )
    max_images = min(caps.max_images, limits.max_images_per_request)
    if len(refs.images) > max_images:
        raise InvalidRequestError(
            f"The request has {len(refs.images)} images; the model '{card.id}' accepts at most {max_images}.",
            param="messages",
            code="too_many_images",
        )
    if refs.videos and not caps.video:
        raise ModelCapabilityError(
            f"The model '{card.id}' does not take video (its card has capabilities.video: false). "
            + _who(state, "video", "video_url parts")
            + " Or send a few frames as image_url parts.",
            param=refs.videos[0][1],
        )
    if len(refs.videos) > caps.max_videos:
        raise InvalidRequestError(
            f"The request has {len(refs.videos)} videos; the model '{card.id}' accepts at most {caps.max_videos}.",
            param="messages",
            code="too_many_videos",
        )
    if refs.audios and not caps.audio_input:
        raise ModelCapabilityError(
            f"The model '{card.id}' does not hear audio (its card has capabilities.audio_input: false), so it cannot "
            "take input_audio parts. " + _who(state, "audio_input", "audio") + " To have speech transcribed first, "
            "use POST /v1/audio/transcriptions.",
            param=refs.audios[0][1],
        )
    if len(refs.audios) > caps.max_audios:
        raise InvalidRequestError(
            f"The request has {len(refs.audios)} audio parts; the model '{card.id}' accepts at most {caps.max_audios}.",
            param="messages",
            code="too_many_audios",
        )


def _who(state: AppState, capability: str, what: str) -> str:
    able = [c.id for c in state.catalog.filter(task="chat") if getattr(c.capabilities, capability)]
    if not able:
        return f"No model of this server takes {what}."
    return f"Models of this server that take {what}: {', '.join(able)}."


async def load_media(
    state: AppState, card: ModelCard, refs: MediaRefs, input_size: ImageInputSize | None
) -> LoadedMedia:
    """Fetch and decode every image and video at once; the first failure cancels the rest.

    Tasks only where two kinds of media come together: each task and its gathering cost the request
    a turn of the event loop, and under load a turn is the time every other stream's tokens take
    (measured, 16 streams: ~0.9 ms a turn; five turns of a text request's time to first token went
    to three tasks for no media at all).
    """
    loads: dict[str, Coroutine[Any, Any, list[Any]]] = {}
    if refs.images:
        loads["images"] = state.media.load_images(
            [ImageRef(p.image_url.url, p.image_url.detail, param) for p, param in refs.images],
            card.limits,
            model=card.id,
            input_size=input_size,
        )
    if refs.videos:
        loads["videos"] = VideoIngestor(state.media).load_videos(
            [VideoRef(p.video_url.url, param) for p, param in refs.videos],
            card.limits,
            model=card.id,
            input_size=input_size,
        )
    if refs.audios:
        loads["audios"] = _load_audios(state, card, refs.audios)
    if len(loads) <= 1:
        return LoadedMedia(**{kind: await load for kind, load in loads.items()})
    tasks = {kind: asyncio.ensure_future(load) for kind, load in loads.items()}
    try:
        await asyncio.gather(*tasks.values())
        return LoadedMedia(**{kind: task.result() for kind, task in tasks.items()})
    finally:
        for t in tasks.values():
            t.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def _load_audios(state: AppState, card: ModelCard, refs: list[tuple[AudioPart, str]]) -> list[DecodedAudio]:
    """Base64 (or a data URI) -> bytes, sized before decoding -> the transcription endpoints' ingestion."""
    out: list[DecodedAudio] = []
    if not refs:
        return out
    if state.audio is None:
        state.audio = AudioIngestor(state.settings)
    ingestor = state.audio
    cap = state.settings.audio.max_upload_bytes
    for part, param in refs:
        data = part.input_audio.data.strip()
        where = f"{param}.data"
        if data[:5].lower() == "data:":
            data = split_data_uri(data, param=where, max_bytes=cap).payload
        if len(data) // 4 * 3 > cap:
            raise PayloadTooLargeError(
                f"The audio holds about {len(data) // 4 * 3} bytes; the limit is {cap} bytes.",
                param=where,
                code="audio_too_large",
            )
        raw = await asyncio.to_thread(decode_base64, data, param=where)
        out.append(await ingestor.decode(raw, card.limits, param=where))
    return out


def to_engine_messages(messages: list[Message], media: LoadedMedia) -> list[ChatMessage]:
    images, videos, audios = iter(media.images), iter(enumerate(media.videos)), iter(media.audios)
    out = []
    for m in messages:
        content: str | list[ChatPart]
        if m.content is None:
            content = ""
        elif isinstance(m.content, str):
            content = m.content
        else:
            content = []
            for p in m.content:
                content.extend(_parts(p, images, videos, audios))
        out.append(
            ChatMessage(
                role="system" if m.role == "developer" else m.role,
                content=content,
                name=m.name,
                tool_calls=[tc.model_dump() for tc in m.tool_calls] if m.tool_calls else None,
                tool_call_id=m.tool_call_id,
                reasoning_content=m.reasoning_content,
            )
        )
    return out


def _parts(
    p: TextPart | ImagePart | VideoPart | AudioPart,
    images: Iterator[Image],
    videos: Iterator[tuple[int, DecodedVideo]],
    audios: Iterator[DecodedAudio],
) -> list[ChatPart]:
    if isinstance(p, TextPart):
        return [ChatPart("text", text=p.text)]
    if isinstance(p, ImagePart):
        return [ChatPart("image", image=next(images))]
    if isinstance(p, VideoPart):
        index, video = next(videos)
        return [ChatPart("image", image=frame, video=index) for frame in video.frames]
    audio = next(audios)
    return [ChatPart("audio", audio=audio.samples, sample_rate=audio.sample_rate)]


def text_length(m: Message) -> int:
    if isinstance(m.content, str):
        return len(m.content)
    if isinstance(m.content, list):
        return sum(len(p.text) for p in m.content if isinstance(p, TextPart))
    return 0
