"""Per-request options (``ChatOptions``) and the ranges the settings form shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import BadRequestError

TEMPERATURE_RANGE = (0.0, 2.0)
MAX_TOKENS_RANGE = (1, 200_000)


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """Per-request options, validated once. ``None`` means "the provider's default"."""

    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.temperature is not None:
            low, high = TEMPERATURE_RANGE
            if not isinstance(self.temperature, (int, float)) or not (
                low <= float(self.temperature) <= high
            ):
                raise BadRequestError(f"temperature must be between {low:g} and {high:g}")
        if self.max_tokens is not None:
            low_t, high_t = MAX_TOKENS_RANGE
            if (
                isinstance(self.max_tokens, bool)
                or not isinstance(self.max_tokens, int)
                or not (low_t <= self.max_tokens <= high_t)
            ):
                raise BadRequestError(f"max tokens must be a whole number from {low_t} to {high_t}")
        if not isinstance(self.system_prompt, str):
            raise BadRequestError("system prompt must be text")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ChatOptions:
        """Options from the guide-style ``get_response(..., temperature=0.2, max_tokens=100,
        system_prompt="...")``. Unknown options are an error, not silently dropped."""
        known = {"system_prompt", "temperature", "max_tokens"}
        unknown = set(kwargs) - known
        if unknown:
            raise BadRequestError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in kwargs.items() if v is not None})
