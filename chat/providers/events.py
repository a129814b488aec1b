"""The events a provider's stream yields, in order: ``TextDelta`` and ``ReasoningDelta``
pieces, then ``Usage`` and ``Finish`` (why the reply ended, in one vocabulary for every
provider)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply's text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning ("thinking"), in order: Anthropic thinking
    blocks, Gemini thought parts, ``reasoning_content``/``reasoning`` fields and
    ``<think>`` blocks of compatible servers and the local model. Shown apart from the
    answer and never sent back to a model as context."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage reported by the upstream for the whole request. ``output_tokens``
    includes ``reasoning_tokens`` (the thinking part, when the provider reports it)."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int | None = None


class FinishReason(enum.StrEnum):
    """Why a reply ended, in one vocabulary for every provider (OpenAI's words where it
    has one). Only ``STOP`` (and ``TOOL_CALLS``) mean the model finished normally."""

    STOP = "stop"  # the model finished its answer
    LENGTH = "length"  # the token limit (max tokens) was used up
    CONTENT_FILTER = "content_filter"  # the provider's safety filter blocked it
    REFUSAL = "refusal"  # the model declined to answer
    TOOL_CALLS = "tool_calls"
    CUT_OFF = "cut_off"  # the stream ended without the provider saying it finished


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of the reply. ``reason`` is a ``FinishReason`` value, or the provider's
    own word when it has no equivalent; ``detail`` is the provider's raw reason when it
    says more (for example Gemini's "SAFETY" or "prompt blocked: OTHER"), for people
    and logs."""

    reason: str
    detail: str = ""

    @property
    def is_normal(self) -> bool:
        """True when the model finished its answer (nothing was cut, filtered, refused)."""
        return self.reason in (FinishReason.STOP, FinishReason.TOOL_CALLS)


StreamEvent = TextDelta | ReasoningDelta | Usage | Finish
