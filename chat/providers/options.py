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
# Stop sequences: at most 4 (OpenAI's limit, the lowest of the providers': Gemini takes
# 5, Anthropic and Mistral more), each at most this many characters (no provider
# documents a length limit; a stop sequence is a word or a marker, not a text).
MAX_STOP_SEQUENCES = 4
MAX_STOP_SEQUENCE_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """Per-request options, validated once. ``None`` means "the provider's default".

    ``reasoning_effort`` (one of ``REASONING_EFFORTS``) and ``thinking_budget`` (tokens,
    within ``THINKING_BUDGET_RANGE``) steer reasoning models; a provider sends each only
    to models that take it (``BaseProvider.unsupported_options`` says which do not).

    ``stop``: sequences that end the reply where the model would write them (the text
    before one is the whole reply, which finishes as a normal stop; the sequence itself
    is not part of it). The shape of OpenAI's ``stop`` (API reference, Chat Completions:
    "a string or an array of up to 4 strings"): a string or a sequence of strings is
    accepted and kept as a tuple; at most ``MAX_STOP_SEQUENCES``, each non-empty and at
    most ``MAX_STOP_SEQUENCE_LENGTH`` characters. Each provider sends them in its own
    field (OpenAI and Mistral ``stop``, Anthropic ``stop_sequences``, Gemini
    ``stop_sequences``, llama.cpp ``stop``), except to models that refuse them
    (``unsupported_options`` names ``"stop"``), which are sent none.

    Raises BadRequestError for a value out of range."""

    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None
    thinking_budget: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", _stop_sequences(self.stop))
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
        system_prompt="...", reasoning_effort="low", thinking_budget=2048, stop=["END"])``.
        Unknown options are an error, not silently dropped. Raises BadRequestError."""
        known = {"system_prompt", "temperature", "max_tokens", "stop", *REASONING_OPTIONS}
        unknown = set(kwargs) - known
        if unknown:
            raise BadRequestError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in kwargs.items() if v is not None})


def _stop_sequences(value: object) -> tuple[str, ...]:
    """``ChatOptions.stop`` as a tuple: a string is one sequence, a list or tuple of
    strings are several. Raises BadRequestError for another type, more than
    ``MAX_STOP_SEQUENCES``, an empty sequence or one longer than
    ``MAX_STOP_SEQUENCE_LENGTH`` characters."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise BadRequestError("stop must be a string or a list of strings")
    if len(value) > MAX_STOP_SEQUENCES:
        raise BadRequestError(
            f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed ({len(value)} given)"
        )
    for sequence in value:
        if not sequence:
            raise BadRequestError("a stop sequence must not be empty")
        if len(sequence) > MAX_STOP_SEQUENCE_LENGTH:
            raise BadRequestError(
                f"a stop sequence must be at most {MAX_STOP_SEQUENCE_LENGTH} characters"
            )
    return tuple(value)
