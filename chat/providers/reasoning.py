"""Reasoning ("thinking") that arrives inside the reply text, shared by the providers.

Models that think before they answer hand their thinking over in one of three ways:

* a field of its own (``reasoning_content``, ``reasoning``, Anthropic's thinking blocks,
  Gemini's thought parts): each provider reads it where its API puts it;
* typed content parts: ``content`` is a list such as
  ``[{"type": "thinking", "thinking": [{"type": "text", "text": "..."}]},
  {"type": "text", "text": "Hello"}]`` (Mistral's reasoning models, also behind
  OpenAI-compatible endpoints): ``content_part_events`` reads them;
* inline, at the very start of the text, between ``<think>`` and ``</think>`` (DeepSeek-R1,
  Qwen3, QwQ, SmolLM3... run by llama.cpp, Ollama, vLLM or LM Studio without a reasoning
  parser): ``ThinkTagSplitter`` takes it apart while it streams.

Either way the app receives ``ReasoningDelta`` for the thinking and ``TextDelta`` for the
answer: the thinking is shown apart and never sent back to a model as context.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .base_provider import ReasoningDelta, TextDelta

logger = logging.getLogger(__name__)

ContentEvent = TextDelta | ReasoningDelta

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

# Splitter states.
_START = 0  # only whitespace and a possible beginning of OPEN_TAG seen so far
_REASONING_START = 1  # just after OPEN_TAG: leading whitespace of the thinking is dropped
_REASONING = 2  # inside the thinking
_ANSWER_START = 3  # just after CLOSE_TAG: whitespace before the answer is dropped
_TEXT = 4  # the answer (or a reply that did not start with OPEN_TAG): passed through


class ThinkTagSplitter:
    """Splits a streamed reply that may begin with ``<think>…</think>`` into reasoning
    and answer, whatever the chunk boundaries.

    Feed the text deltas in order with ``feed`` and call ``flush`` once at the end of the
    stream; both return the events to pass on, in order. The rules:

    * only a block at the start counts (leading whitespace allowed): ``<think>`` later in
      a reply is text, as is a reply that starts with anything else;
    * a tag split over chunks (``"<th"`` + ``"ink>"``, ``"</thi"`` + ``"nk>"``) is
      recognised: the ambiguous tail is held back until the next chunk decides it;
    * text after ``</think>`` in the same chunk is answer text; whitespace right after
      either tag is dropped (templates put newlines there);
    * a block never closed (the token limit hit while thinking) stays reasoning; a reply
      that ends while only a prefix of ``<think>`` has arrived (``"<th"``) is text.

    One splitter per reply: it keeps state. Once the reply is known to be plain text,
    ``feed`` passes each delta straight through.
    """

    __slots__ = ("_buffer", "_state")

    def __init__(self) -> None:
        self._state = _START
        self._buffer = ""

    def feed(self, text: str) -> list[ContentEvent]:
        """The events for the next piece of reply text (possibly none yet)."""
        if self._state == _TEXT:
            return [TextDelta(text)] if text else []
        if not text:
            return []
        self._buffer += text
        return self._drain(final=False)

    def flush(self) -> list[ContentEvent]:
        """The events still held back, at the end of the stream."""
        if self._state == _TEXT or not self._buffer:
            return []
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> list[ContentEvent]:
        events: list[ContentEvent] = []
        while True:
            buffer = self._buffer
            if self._state == _START:
                stripped = buffer.lstrip()
                if stripped.startswith(OPEN_TAG):
                    self._buffer = stripped[len(OPEN_TAG) :]
                    self._state = _REASONING_START
                    continue
                if not final and OPEN_TAG.startswith(stripped):
                    return events  # whitespace or "<thi": the next chunk decides
                self._state = _TEXT
                self._buffer = ""
                if buffer:
                    events.append(TextDelta(buffer))
                return events
            if self._state in (_REASONING_START, _ANSWER_START):
                stripped = buffer.lstrip()
                if not stripped:
                    self._buffer = ""
                    return events
                if self._state == _ANSWER_START:
                    self._state = _TEXT
                    self._buffer = ""
                    events.append(TextDelta(stripped))
                    return events
                self._state = _REASONING
                self._buffer = stripped
                continue
            # _REASONING
            end = buffer.find(CLOSE_TAG)
            if end >= 0:
                if end:
                    events.append(ReasoningDelta(buffer[:end]))
                self._buffer = buffer[end + len(CLOSE_TAG) :]
                self._state = _ANSWER_START
                continue
            keep = 0 if final else _partial_tag_at_end(buffer, CLOSE_TAG)
            if len(buffer) > keep:
                events.append(ReasoningDelta(buffer[: len(buffer) - keep]))
            self._buffer = buffer[len(buffer) - keep :] if keep else ""
            return events


def _partial_tag_at_end(text: str, tag: str) -> int:
    """Length of the longest proper prefix of ``tag`` that ``text`` ends with."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def content_part_events(content: object) -> list[ContentEvent]:
    """The events for a message ``content`` given as a list of typed parts.

    Follows Mistral's content chunks (docs.mistral.ai, "Reasoning": ``TextChunk`` and
    ``ThinkChunk``), which its reasoning models also send through OpenAI-compatible
    endpoints: ``{"type": "text", "text": ...}`` is answer text; ``{"type": "thinking",
    "thinking": [{"type": "text", "text": ...}, ...]}`` (or ``"thinking": "..."``) is
    reasoning. A plain string item is text. Parts of any other type (images, references,
    future kinds) carry no reply text and are skipped, with a debug log line; nothing
    here raises on an unexpected shape.
    """
    if isinstance(content, str):
        return [TextDelta(content)] if content else []
    if not isinstance(content, list):
        return []
    events: list[ContentEvent] = []
    for part in content:
        if isinstance(part, str):
            if part:
                events.append(TextDelta(part))
            continue
        if not isinstance(part, Mapping):
            logger.debug("content part skipped: %s", type(part).__name__)
            continue
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
        elif kind == "thinking":
            thinking = _thinking_text(part.get("thinking"))
            if thinking:
                events.append(ReasoningDelta(thinking))
        else:
            logger.debug("content part of type %r skipped", kind)
    return events


def _thinking_text(thinking: object) -> str:
    if isinstance(thinking, str):
        return thinking
    if not isinstance(thinking, list):
        return ""
    texts: list[str] = []
    for item in thinking:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("text"), str):
            texts.append(item["text"])
    return "".join(texts)
