"""Per-request options (``ChatOptions``) and the ranges the settings form shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import BadRequestError

TEMPERATURE_RANGE = (0.0, 2.0)
MAX_TOKENS_RANGE = (1, 200_000)
# How hard a reasoning model thinks (OpenAI's ``reasoning_effort`` words; each provider
# maps them to its own: see its request builder).
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
# Tokens a model may spend thinking (Anthropic's ``budget_tokens`` starts at 1,024;
# 128,000 is the most any current model writes in one reply).
THINKING_BUDGET_RANGE = (1024, 128_000)
# The reasoning options, as ``unsupported_options`` names them.
REASONING_OPTIONS = ("reasoning_effort", "thinking_budget")


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """Per-request options, validated once. ``None`` means "the provider's default".

    ``reasoning_effort`` (one of ``REASONING_EFFORTS``) and ``thinking_budget`` (tokens,
    within ``THINKING_BUDGET_RANGE``) steer reasoning models; a provider sends each only
    to models that take it (``BaseProvider.unsupported_options`` says which do not).
    Raises BadRequestError for a value out of range."""

    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None
    thinking_budget: int | None = None

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
        if self.reasoning_effort is not None and self.reasoning_effort not in REASONING_EFFORTS:
            raise BadRequestError(f"reasoning effort must be one of {', '.join(REASONING_EFFORTS)}")
        if self.thinking_budget is not None:
            low_b, high_b = THINKING_BUDGET_RANGE
            if (
                isinstance(self.thinking_budget, bool)
                or not isinstance(self.thinking_budget, int)
                or not (low_b <= self.thinking_budget <= high_b)
            ):
                raise BadRequestError(
                    f"thinking budget must be a whole number of tokens from {low_b} to {high_b}"
                )

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ChatOptions:
        """Options from the guide-style ``get_response(..., temperature=0.2, max_tokens=100,
        system_prompt="...", reasoning_effort="low", thinking_budget=2048)``. Unknown
        options are an error, not silently dropped. Raises BadRequestError."""
        known = {"system_prompt", "temperature", "max_tokens", *REASONING_OPTIONS}
        unknown = set(kwargs) - known
        if unknown:
            raise BadRequestError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in kwargs.items() if v is not None})
