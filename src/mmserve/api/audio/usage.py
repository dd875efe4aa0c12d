"""Audio usage: what one speech or transcription request consumed, in audio seconds.

Every audio request ends in exactly one :func:`record_usage` call with an :class:`AudioUsage`
(the unit ``pricing.per_audio_second`` bills): the one place metering hooks in; until then it
is logged. :func:`audio_card` is likewise the one place the audio endpoints resolve a model
name. The API responses carry the same figures in OpenAI's shapes (:meth:`AudioUsage.api`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from mmserve.api.state import AppState
from mmserve.catalog.schema import ModelCard

log = logging.getLogger("mmserve.usage")

AudioTask = Literal["speech", "transcription", "translation"]


@dataclass(frozen=True)
class AudioUsage:
    model: str
    task: AudioTask
    seconds: float  # audio produced (speech) or heard (transcription, translation)
    input_characters: int = 0  # speech input length

    def api(self) -> dict[str, Any]:
        """OpenAI's duration usage, ``{"type": "duration", "seconds": ...}`` (+ characters for speech)."""
        out: dict[str, Any] = {"type": "duration", "seconds": round(self.seconds, 3)}
        if self.task == "speech":
            out["input_characters"] = self.input_characters
        return out

    def cost(self, card: ModelCard) -> float:
        return self.seconds * card.pricing.per_audio_second


def audio_card(state: AppState, name: str, task: str) -> ModelCard:
    """The card that serves ``name`` for ``task`` (a 404 / 400 naming ``model`` otherwise)."""
    return state.catalog.get(name, task=task)


def record_usage(state: AppState, card: ModelCard, usage: AudioUsage) -> None:
    """Called once per audio request, when it is done (or the client left), with what it consumed."""
    log.info(
        "usage model=%s task=%s audio_seconds=%.3f input_characters=%d",
        usage.model,
        usage.task,
        usage.seconds,
        usage.input_characters,
    )
