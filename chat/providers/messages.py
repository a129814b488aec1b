"""The OpenAI-shaped messages a provider receives, and pure helpers that reshape them for
APIs that differ (system prompt apart, roles that must alternate)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from .errors import BadRequestError

Role = Literal["system", "user", "assistant"]
Message = Mapping[str, str]  # {"role": "system"|"user"|"assistant", "content": str}

_ROLES = ("system", "user", "assistant")


def normalize_messages(messages: Iterable[Message]) -> list[dict[str, str]]:
    """Check the OpenAI-shaped messages and return plain dicts. Raises BadRequestError."""
    result: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else None
        if role not in _ROLES:
            raise BadRequestError(f"message {i}: role must be one of {', '.join(_ROLES)}")
        if not isinstance(content, str):
            raise BadRequestError(f"message {i}: content must be text")
        result.append({"role": role, "content": content})
    if not any(m["role"] != "system" for m in result):
        raise BadRequestError("there is no message to answer")
    return result


def split_system(
    messages: Sequence[Message], system_prompt: str = ""
) -> tuple[str, list[dict[str, str]]]:
    """Pull system messages out (APIs that take the system prompt apart: Anthropic,
    Gemini). The options' system prompt comes first, then any system messages."""
    parts = [system_prompt] if system_prompt.strip() else []
    turns: list[dict[str, str]] = []
    for message in messages:
        if message["role"] == "system":
            if message["content"].strip():
                parts.append(message["content"])
        else:
            turns.append({"role": message["role"], "content": message["content"]})
    return "\n\n".join(parts), turns


def merge_consecutive(turns: Sequence[Message]) -> list[dict[str, str]]:
    """Join consecutive turns of the same role (APIs that require alternation reject
    them), separated by a blank line."""
    merged: list[dict[str, str]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["content"] = f"{merged[-1]['content']}\n\n{turn['content']}"
        else:
            merged.append({"role": turn["role"], "content": turn["content"]})
    return merged


def with_system_prompt(messages: Sequence[Message], system_prompt: str) -> list[dict[str, str]]:
    """OpenAI-style: the options' system prompt as the first system message."""
    result = [{"role": m["role"], "content": m["content"]} for m in messages]
    if system_prompt.strip():
        result.insert(0, {"role": "system", "content": system_prompt})
    return result
