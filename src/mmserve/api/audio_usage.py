"""Audio usage: what one speech or transcription request consumed, in audio seconds.

Every audio request ends in exactly one :func:`record_usage` call with an :class:`AudioUsage`
(the unit ``pricing.per_audio_second`` bills), which goes to the usage meter.
The API responses carry the same figures in OpenAI's shapes (:meth:`AudioUsage.api`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from mmserve.api.state import AppState
from mmserve.cards import ModelCard
from mmserve.control.metering import cost_value

AudioTask = Literal["speech", "transcription", "translation"]


@dataclass(frozen=True)
class AudioUsage:
    model: str
    task: AudioTask
    seconds: float  # audio produced (speech) or heard (transcription, translation)
    input_characters: int = 0  # speech input length
    # tokens the model billed, when it reports them (a provider's gpt-4o-style usage)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None  # USD, once metered

    def api(self) -> dict[str, Any]:
        """OpenAI's duration usage, ``{"type": "duration", "seconds": ...}`` (+ characters for speech, + cost),
        or its token usage, ``{"type": "tokens", ...}``, for a model that billed tokens (+ the seconds)."""
        if self.input_tokens or self.output_tokens:
            out: dict[str, Any] = {
                "type": "tokens",
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
                "seconds": round(self.seconds, 3),
            }
        else:
            out = {"type": "duration", "seconds": round(self.seconds, 3)}
        if self.task == "speech":
            out["input_characters"] = self.input_characters
        if self.cost is not None:  # mmserve's extension: USD from the card's prices, as metered
            out["cost"] = cost_value(self.cost)
        return out


def record_usage(state: AppState, card: ModelCard, usage: AudioUsage) -> AudioUsage:
    """Called once per audio request, when it is done (or the client left), with what it consumed;
    returns the usage with its cost."""
    endpoint = {"speech": "audio.speech", "transcription": "audio.transcriptions", "translation": "audio.translations"}
    event = state.meter.record(
        card,
        endpoint[usage.task],
        audio_seconds=usage.seconds,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
    )
    return replace(usage, cost=event.cost)
