"""Transcription and translation with transformers' Whisper, from local weights.

Any ``WhisperForConditionalGeneration`` checkpoint (tiny to large-v3, distil-whisper, or the
tiny demo model) served with its own processor and ``generation_config``.

Long audio is cut into 30 s windows that are decoded in batches by Whisper's ``generate``
with timestamps on (its timestamp rules, language detection, prompt conditioning and
temperature included). The windows of concurrent requests share those batches
(:mod:`mmserve.engines.common.batcher`): a free worker takes up to ``batch_size`` waiting
windows that ask the same of ``generate`` (language, task, prompt, temperature, word times),
from one request or several, so a burst of short requests decodes together. Fixed windows
rather than transformers' sequential "seek to the last timestamp" loop: the loop can stall
on a window whose timestamps never advance, while fixed windows bound the work of a request
to ``ceil(seconds / 30) x max_new_tokens`` decoder steps. The decoded windows are split into
segments by :mod:`mmserve.engines.whisper.segments`; word times, when asked, come from
Whisper's cross-attention alignment heads (``return_token_timestamps``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from mmserve.engines.base import EngineOptions, SegmentCallback, TranscriptionEngine
from mmserve.engines.common.batcher import Batcher
from mmserve.engines.registry import import_names, require
from mmserve.engines.types import Segment, Transcript, TranscriptionInput
from mmserve.engines.whisper.segments import WindowOutput, split_window
from mmserve.errors import EngineError, InvalidRequestError, ModelCapabilityError

log = logging.getLogger("mmserve.engines.whisper")
RATE = 16000
WINDOW_S = 30.0


def _quiet_length_warning(record: logging.LogRecord) -> bool:
    """Whisper's generate sets max_length itself and then warns on every call that max_new_tokens wins."""
    return "seem to have been set" not in record.getMessage()


class WhisperOptions(EngineOptions):
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(
        default=4, ge=1, le=64, description="30 s windows decoded at once (of one request or of several)."
    )
    max_new_tokens: int = Field(default=224, ge=1, le=444, description="Decoder steps per window.")
    max_prompt_tokens: int = Field(default=223, ge=0, description="The prompt keeps its last tokens (OpenAI: 224).")


@dataclass
class _Window:
    """One 30 s window of a request, waiting for a batch."""

    request: TranscriptionInput
    language: str | None
    prompt_ids: Any
    index: int
    audio: Any
    future: Future[tuple[WindowOutput, str | None]] = field(default_factory=Future)

    @property
    def key(self) -> Hashable:
        """Windows with equal keys ask the same of ``generate`` and can share a call."""
        r = self.request
        prompt = None if self.prompt_ids is None else tuple(self.prompt_ids.reshape(-1).tolist())
        return (self.language, r.task, prompt, r.temperature, r.word_timestamps)


class WhisperEngine(TranscriptionEngine):
    uses_torch = True
    Options = WhisperOptions
    options: WhisperOptions

    model: Any = None
    processor: Any = None
    _batcher: Batcher[_Window] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Logits processors appended to every ``generate`` call (constrained decoding, biasing, tests).
        self.extra_logits_processors: list[Any] = []

    @classmethod
    def import_libraries(cls, options: EngineOptions) -> None:
        import_names("transformers", "WhisperForConditionalGeneration", "WhisperProcessor")

    def load(self) -> None:
        require("transformers", self.card.engine)
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from mmserve.engines.common.torch_utils import from_pretrained, resolve_device

        if self.source is None:
            raise EngineError(f"Model '{self.card.id}' has no source.")
        self.device = resolve_device(self.device)
        self.model = from_pretrained(
            WhisperForConditionalGeneration, self.source, device=self.device, dtype=self.options.dtype
        )
        self.processor = WhisperProcessor.from_pretrained(self.source)
        tok = self.processor.tokenizer
        gen = self.model.generation_config
        self._eot = int(gen.eos_token_id)
        self._ts_begin = int(gen.no_timestamps_token_id) + 1
        self._no_speech = next(
            (i for t in ("<|nospeech|>", "<|nocaptions|>") if (i := tok.convert_tokens_to_ids(t)) != tok.unk_token_id),
            None,
        )
        self._languages = {k.strip("<|>"): v for k, v in (getattr(gen, "lang_to_id", None) or {}).items()}
        self._multilingual = bool(getattr(gen, "is_multilingual", False)) and bool(self._languages)
        self._batcher = Batcher(
            self._decode_batch,
            key=lambda w: w.key,
            limit=self.options.batch_size,
            name=f"whisper-{self.card.id}",
        )
        torch.set_grad_enabled(False)
        logging.getLogger("transformers.generation.utils").addFilter(_quiet_length_warning)

    def unload(self) -> None:
        from mmserve.engines.common.torch_utils import release_memory

        if self._batcher is not None:
            self._batcher.close()
        self.model = self.processor = self._batcher = None
        release_memory()

    def memory_bytes(self) -> int | None:
        from mmserve.engines.common.torch_utils import module_bytes

        return module_bytes(self.model) if self.model is not None else None

    # ------------------------------------------------------------------ transcription

    async def transcribe(self, request: TranscriptionInput, on_segment: SegmentCallback | None = None) -> Transcript:
        batcher = self._batcher
        if self.model is None or batcher is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        language = self._check(request)
        segments, detected = await self._run(batcher, request, language, on_segment)
        text = "".join(s.text if i == 0 else " " + s.text for i, s in enumerate(segments))
        return Transcript(
            text=text,
            language=language or detected or "en",
            duration=len(request.audio) / RATE,
            segments=segments,
        )

    def _check(self, request: TranscriptionInput) -> str | None:
        if request.sample_rate != RATE:
            raise EngineError(f"Whisper needs {RATE} Hz audio, got {request.sample_rate}")
        if request.task == "translate" and not self._multilingual:
            raise ModelCapabilityError(
                f"The model '{self.card.id}' is English-only and cannot translate.", param="model"
            )
        lang = (request.language or "").strip().lower() or None
        if lang is None:
            return None
        if not self._multilingual:
            if lang != "en":
                raise InvalidRequestError(
                    f"The model '{self.card.id}' is English-only; got language '{request.language}'.",
                    param="language",
                    code="unsupported_language",
                )
            return None  # English-only checkpoints take no language token
        if lang not in self._languages:
            raise InvalidRequestError(
                f"Unknown language '{request.language}'. Use an ISO-639-1 code such as 'en', 'de' or 'fr'.",
                param="language",
                code="unsupported_language",
            )
        return lang

    async def _run(
        self,
        batcher: Batcher[_Window],
        request: TranscriptionInput,
        language: str | None,
        on_segment: SegmentCallback | None,
    ) -> tuple[list[Segment], str | None]:
        """Queue the request's windows for the batcher, then split them into segments in order as they come."""
        audio = request.audio
        n = max(1, math.ceil(len(audio) / (WINDOW_S * RATE)))
        prompt_ids = await asyncio.to_thread(self._prompt_ids, request.prompt)
        windows = [
            _Window(request, language, prompt_ids, i, audio[int(i * WINDOW_S * RATE) : int((i + 1) * WINDOW_S * RATE)])
            for i in range(n)
        ]
        for w in windows:
            batcher.submit(w)
        segments: list[Segment] = []
        detected: str | None = None
        try:
            for w in windows:
                out, lang = await asyncio.wrap_future(w.future)
                detected = detected or lang
                for seg in split_window(
                    out,
                    timestamp_begin=self._ts_begin,
                    eot=self._eot,
                    decode=self._decode_text,
                    first_id=len(segments),
                    words=request.word_timestamps,
                ):
                    segments.append(seg)
                    if on_segment is not None:
                        on_segment(seg)
        finally:  # failed or abandoned: windows not decoded yet are dropped from the queue
            for w in windows:
                w.future.cancel()
        return segments, detected

    def _decode_batch(self, windows: list[_Window]) -> None:
        """Decode windows together; if a batch of several fails, each again alone (only its own request fails)."""
        try:
            outs = self._decode(windows)
        except Exception as e:
            if len(windows) == 1:
                windows[0].future.set_exception(e)
                return
            log.warning("a batch of %d windows failed (%s); decoding them one by one", len(windows), e)
            for w in windows:
                self._decode_batch([w])
            return
        for w, out in zip(windows, outs, strict=True):
            w.future.set_result(out)

    def _decode_text(self, ids: list[int]) -> str:
        text: str = self.processor.tokenizer.decode(ids, skip_special_tokens=True)
        return text

    def _prompt_ids(self, prompt: str | None) -> Any:
        if not prompt or not prompt.strip() or self.options.max_prompt_tokens == 0:
            return None
        ids = self.processor.get_prompt_ids(prompt.strip(), return_tensors="pt")
        keep = self.options.max_prompt_tokens
        if ids.shape[-1] > keep + 1:  # keep <|startofprev|> and the prompt's last tokens
            ids = ids[..., [0, *range(ids.shape[-1] - keep, ids.shape[-1])]]
        return ids.to(self.device)

    def _decode(self, windows: list[_Window]) -> list[tuple[WindowOutput, str | None]]:
        """One ``generate`` call for windows that share a key; each window's output and detected language."""
        import torch
        from transformers import LogitsProcessorList

        first = windows[0]
        request, language, prompt_ids = first.request, first.language, first.prompt_ids
        feats = self.processor.feature_extractor(
            [w.audio for w in windows], sampling_rate=RATE, return_tensors="pt", return_attention_mask=True
        )
        features = feats.input_features.to(self.device, self.model.dtype)
        kwargs: dict[str, Any] = {}
        if request.temperature > 0:
            kwargs.update(do_sample=True, temperature=request.temperature)
        else:
            kwargs.update(do_sample=False)
        with torch.inference_mode():
            out = self.model.generate(
                features,
                attention_mask=feats.attention_mask.to(self.device),
                return_timestamps=True,
                # word times need cross-attentions: transformers switches the model to eager attention
                return_token_timestamps=request.word_timestamps,
                language=language if self._multilingual else None,
                task=request.task if self._multilingual else None,
                prompt_ids=prompt_ids,
                max_new_tokens=self.options.max_new_tokens,
                force_unique_generate_call=True,
                return_dict_in_generate=True,
                output_scores=True,
                output_logits=True,
                logits_processor=LogitsProcessorList(self.extra_logits_processors) or None,
                **kwargs,
            )
        steps = len(out["scores"])
        seqs = out["sequences"]
        gen = seqs[:, seqs.shape[1] - steps :]
        scores = torch.stack([s.float() for s in out["scores"]], dim=1).log_softmax(-1)  # [B, steps, V]
        logprobs = scores.gather(-1, gen.unsqueeze(-1)).squeeze(-1).clamp(min=-1e4)
        no_speech = [0.0] * len(windows)
        if self._no_speech is not None and out.get("logits"):
            no_speech = out["logits"][0].float().softmax(-1)[:, self._no_speech].tolist()
        times = out.get("token_timestamps")
        ids = {v: k for k, v in self._languages.items()}
        outs = []
        for i, w in enumerate(windows):
            detected = None
            if self._multilingual and language is None:
                detected = next((ids[t] for t in seqs[i, : seqs.shape[1] - steps].tolist() if t in ids), None)
            window = WindowOutput(
                tokens=gen[i].tolist(),
                logprobs=logprobs[i].tolist(),
                offset=w.index * WINDOW_S,
                duration=len(w.audio) / RATE,
                token_times=times[i, seqs.shape[1] - steps :].tolist() if times is not None else None,
                no_speech_prob=float(no_speech[i]),
                temperature=request.temperature,
                seek=int(w.index * WINDOW_S * 100),
            )
            outs.append((window, detected))
        return outs
