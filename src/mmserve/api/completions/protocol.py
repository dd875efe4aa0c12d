"""Pydantic model of POST /v1/completions (OpenAI's legacy completions)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

from mmserve.api.chat.protocol import Stop, StreamOptions
from mmserve.api.jsonbody import SEED_MAX, RequestModel
from mmserve.api.openapi import not_empty
from mmserve.api.unicode import refuse_lone_surrogates

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for legacy completions


class CompletionRequest(RequestModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    prompt: StrictStr | list[StrictInt] | list[StrictStr] | list[list[StrictInt]] = Field(
        description="A string, a list of strings, token ids, or a list of token-id lists.",
        json_schema_extra=not_empty,
    )
    max_tokens: int | None = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=5, description="Log-probabilities of the k most likely tokens.")
    ignore_eos: bool = Field(default=False, description="vLLM's extension: generate past end-of-sequence.")
    seed: int | None = Field(default=None, ge=-(2**63), le=SEED_MAX)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    best_of: int | None = Field(default=None, ge=1, le=128)
    logit_bias: dict[str, int] | None = Field(
        default=None, json_schema_extra={"maxProperties": 0}, description="Not supported: refused unless empty."
    )
    suffix: str | None = Field(
        default=None, json_schema_extra={"maxLength": 0}, description="Not supported (fill-in): refused."
    )
    user: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        refuse_lone_surrogates(data)  # raised as is (not a ValueError): a 400 naming the exact field
        return data

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("prompt must hold at least one prompt")
        return v

    @property
    def prompts(self) -> list[tuple[str | list[int], str]]:
        """Each prompt with the param that names it."""
        p = self.prompt
        if isinstance(p, str) or all(isinstance(t, int) for t in p):
            return [(p, "prompt")]  # type: ignore[list-item]
        return [(item, f"prompt[{i}]") for i, item in enumerate(p)]  # type: ignore[misc]

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)
