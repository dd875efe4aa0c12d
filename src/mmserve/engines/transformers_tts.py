"""Neural text-to-speech with transformers' VITS (``facebook/mms-tts-*`` and other VitsModel checkpoints).

The text is split into sentences (at most ``max_chunk_chars`` each, cut at spaces) that are
synthesised one after another in a worker thread, so the first sentence's audio is sent
while the rest is computed. ``speed`` is the model's own ``speaking_rate``.

Voices: a single-speaker model speaks every OpenAI voice name (and ``default``) with its one
voice; a multi-speaker model maps names to speaker ids with ``options.speakers`` and also takes
``speaker_<n>``. ``instructions`` cannot steer VITS and are ignored.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import Field

from mmserve.engines.base import EngineOptions, SpeechEngine
from mmserve.engines.common.voices import OPENAI_VOICES
from mmserve.engines.registry import import_names, require
from mmserve.engines.types import AudioChunk, SpeechInput
from mmserve.errors import EngineError, InvalidRequestError

_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")


class TransformersTTSOptions(EngineOptions):
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    speakers: dict[str, int] = Field(default_factory=dict, description="Voice name -> speaker id (multi-speaker).")
    max_chunk_chars: int = Field(default=300, ge=20, le=4096, description="Longest text synthesised in one pass.")
    noise_scale: float | None = Field(default=None, ge=0, description="Overrides the model's noise_scale.")
    seed: int | None = Field(default=None, description="Fixed seed: the same text gives the same audio.")


class TransformersTTSEngine(SpeechEngine):
    uses_torch = True
    Options = TransformersTTSOptions
    options: TransformersTTSOptions

    model: Any = None
    tokenizer: Any = None
    _pool: ThreadPoolExecutor | None = None

    @classmethod
    def import_libraries(cls, options: EngineOptions) -> None:
        import_names("transformers", "AutoTokenizer", "VitsModel")

    def load(self) -> None:
        require("transformers", self.card.engine)
        import torch
        from transformers import AutoTokenizer, VitsModel

        from mmserve.engines.common.torch_utils import from_pretrained, resolve_device

        if self.source is None:
            raise EngineError(f"Model '{self.card.id}' has no source.")
        self.device = resolve_device(self.device)
        self.model = from_pretrained(VitsModel, self.source, device=self.device, dtype=self.options.dtype)
        if self.options.noise_scale is not None:
            self.model.noise_scale = self.options.noise_scale
        self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        self.sample_rate = int(self.model.config.sampling_rate)
        self._speakers = int(self.model.config.num_speakers)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tts-{self.card.id}")
        torch.set_grad_enabled(False)

    def unload(self) -> None:
        from mmserve.engines.common.torch_utils import release_memory

        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.model = self.tokenizer = self._pool = None
        release_memory()

    def memory_bytes(self) -> int | None:
        from mmserve.engines.common.torch_utils import module_bytes

        return module_bytes(self.model) if self.model is not None else None

    def voices(self) -> list[str]:
        if self.card.capabilities.voices:
            return list(self.card.capabilities.voices)
        if self._speakers > 1:
            return sorted(self.options.speakers) + [f"speaker_{i}" for i in range(self._speakers)]
        return [*OPENAI_VOICES, "default"]

    def speaker_for(self, voice: str) -> int | None:
        key = voice.strip().lower()
        names = {v.lower() for v in self.voices()}
        if key not in names and not (self._speakers > 1 and key in {f"speaker_{i}" for i in range(self._speakers)}):
            raise InvalidRequestError(
                f"The model '{self.card.id}' has no voice '{voice}'. Voices: {', '.join(self.voices()[:20])}.",
                param="voice",
                code="invalid_voice",
            )
        if self._speakers <= 1:
            return None
        if key.startswith("speaker_"):
            return int(key.removeprefix("speaker_"))
        return {k.lower(): v for k, v in self.options.speakers.items()}[key]

    async def synthesize(self, request: SpeechInput) -> AsyncIterator[AudioChunk]:
        if self.model is None or self._pool is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        speaker = self.speaker_for(request.voice)
        texts = split_text(request.text, self.options.max_chunk_chars)
        chunks = [ids for ids in (self.tokenizer(t).input_ids for t in texts) if ids]
        if not chunks:
            raise InvalidRequestError(
                f"The input has no characters the model '{self.card.id}' can speak.", param="input"
            )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()
        loop.run_in_executor(self._pool, self._run, chunks, speaker, request.speed, loop, queue, cancelled)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise EngineError(f"speech synthesis failed in '{self.card.id}'") from item
                yield AudioChunk(item, self.sample_rate)
        finally:
            cancelled.set()

    def _run(
        self,
        chunks: list[list[int]],
        speaker: int | None,
        speed: float,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
        cancelled: threading.Event,
    ) -> None:
        import torch

        from mmserve.engines.common.torch_utils import loop_sender

        send = loop_sender(loop, queue)

        try:
            if self.options.seed is not None:
                torch.manual_seed(self.options.seed)
            for ids in chunks:
                if cancelled.is_set():
                    break
                with torch.inference_mode():
                    out = self.model(
                        input_ids=torch.tensor([ids], device=self.device), speaker_id=speaker, speaking_rate=speed
                    )
                send(out.waveform[0].float().cpu().numpy())
            send(None)
        except BaseException as e:
            send(e)


def split_text(text: str, max_chars: int) -> list[str]:
    """Sentences of at most ``max_chars`` (longer ones cut at the last space before the limit)."""
    out = []
    for sentence in _SENTENCE.split(text):
        sentence = sentence.strip()
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out
