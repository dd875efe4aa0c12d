"""Audio usage: what one speech or transcription request consumed, in audio seconds.

Every audio request ends in exactly one :func:`record_usage` call with an :class:`AudioUsage`
(the unit ``pricing.per_audio_second`` bills), which goes to the usage meter.
:func:`audio_card` is likewise the one place the audio endpoints resolve a model name
(routing, ``auto`` and per-key permissions). The API responses carry the same figures in
OpenAI's shapes (:meth:`AudioUsage.api`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mmserve.api.state import AppState
from mmserve.catalog.schema import ModelCard
from mmserve.control.routing import Needs

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


def audio_card(state: AppState, name: str, task: str) -> ModelCard:
    """The card that serves ``name`` for ``task`` (a 404 / 400 / 403 naming ``model`` otherwise)."""
    return state.router.route(name, Needs(task)).cards[0]


def record_usage(state: AppState, card: ModelCard, usage: AudioUsage) -> None:
    """Called once per audio request, when it is done (or the client left), with what it consumed."""
    endpoint = {"speech": "audio.speech", "transcription": "audio.transcriptions", "translation": "audio.translations"}
    state.meter.record(card, endpoint[usage.task], audio_seconds=usage.seconds)
