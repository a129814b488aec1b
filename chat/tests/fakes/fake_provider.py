"""A scripted in-process provider for service and view tests (no HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

from chat.providers.base_provider import (
    BaseProvider,
    ChatOptions,
    Finish,
    ModelCapabilities,
    ProviderError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
)


@dataclass
class Script:
    """What the fake provider does on its next call."""

    chunks: list[str] = field(default_factory=lambda: ["Hello", " there", "!"])
    usage: tuple[int, int] | None = (10, 3)
    pause: float = 0.0  # seconds between chunks
    error: ProviderError | None = None  # raised after the chunks
    first_delay: float = 0.0
    reasoning: list[str] = field(default_factory=list)  # ReasoningDelta before the text
    finish: str | None = "stop"  # None: the stream ends without a finish reason
    finish_detail: str = ""
    usage_reasoning: int | None = None  # Usage.reasoning_tokens
    raw_chunks: list[object] | None = None  # yielded as TextDelta(obj) unchecked (bugs)


class FakeProvider(BaseProvider):
    label = "Fake"
    requires_api_key = False
    default_models = ("fake-small", "fake-large")
    # Models that take no temperature, with the reason (like Anthropic's, or OpenAI's
    # reasoning models).
    no_temperature: ClassVar[dict[str, str]] = {"fake-large": "this model uses a fixed temperature"}
    # Models that take no reasoning settings (reasoning_effort, thinking_budget), with
    # the reason; fake-large takes both.
    no_reasoning: ClassVar[dict[str, str]] = {"fake-small": "this model does not reason"}
    # What each model reads (ModelCapabilities); a model not listed is unknown (the app
    # sends it everything). Tests set entries and restore them.
    model_capabilities: ClassVar[dict[str, ModelCapabilities]] = {}
    scripts: ClassVar[list[Script]] = []
    calls: ClassVar[list[dict[str, object]]] = []
    cancelled: ClassVar[list[bool]] = []

    def unsupported_options(self, model: str) -> dict[str, str]:
        unsupported = {}
        reason = self.no_temperature.get(model)
        if reason:
            unsupported["temperature"] = reason
        reason = self.no_reasoning.get(model)
        if reason:
            unsupported["reasoning_effort"] = unsupported["thinking_budget"] = reason
        return unsupported

    def capabilities(self, model: str) -> ModelCapabilities:
        return self.model_capabilities.get(model, ModelCapabilities())

    async def _stream(
        self, messages: list[dict[str, object]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        script = self.scripts.pop(0) if self.scripts else Script()
        type(self).calls.append({"messages": messages, "model": model, "options": options})
        try:
            if script.first_delay:
                await asyncio.sleep(script.first_delay)
            for thought in script.reasoning:
                yield ReasoningDelta(thought)
            for chunk in script.chunks:
                if script.pause:
                    await asyncio.sleep(script.pause)
                yield TextDelta(chunk)
            for raw in script.raw_chunks or ():
                yield TextDelta(raw)  # type: ignore[arg-type]
            if script.error is not None:
                raise script.error
            if script.usage:
                yield Usage(*script.usage, reasoning_tokens=script.usage_reasoning)
            if script.finish is not None:
                yield Finish(script.finish, script.finish_detail)
        except (asyncio.CancelledError, GeneratorExit):
            type(self).cancelled.append(True)
            raise
