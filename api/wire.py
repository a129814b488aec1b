"""OpenAI's Chat Completions wire format, as the ``/v1`` API sends it.

The shapes follow OpenAI's API reference (platform.openai.com/docs/api-reference/chat:
"The chat completion object", "The chat completion chunk object") and its error
responses (platform.openai.com/docs/guides/error-codes): what the official ``openai``
SDKs read. Reasoning goes in ``reasoning_content`` (the field DeepSeek, vLLM and others
use beside ``content``), never mixed into the answer.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chat.providers import Usage

# Our finish reasons (chat.providers.FinishReason, plus the run's own) in OpenAI's words.
# "cut_off" (the stream ended without the provider saying it finished) and a reply cut by
# the server's time limit are incomplete: "length" is OpenAI's word for a cut reply.
_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "tool_calls": "tool_calls",
    "cut_off": "length",
    "time_limit": "length",
    "interrupted": "length",
}


def finish_reason(reason: str) -> str:
    """OpenAI's ``finish_reason`` for one of ours ("stop" when there is none)."""
    return _FINISH_REASONS.get(reason, "stop")


def error_body(
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI answers a refusal."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage_body(usage: Usage | None) -> dict[str, Any] | None:
    """OpenAI's ``usage`` (prompt, completion and total tokens; reasoning tokens in
    ``completion_tokens_details``), or None when the provider reported none."""
    if usage is None:
        return None
    body: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


def completion_body(
    *,
    completion_id: str,
    model: str,
    created: int,
    text: str,
    reasoning: str,
    finish: str,
    usage: Usage | None,
) -> dict[str, Any]:
    """A whole ``chat.completion`` object (``stream`` false)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    usage_json = usage_body(usage)
    if usage_json is not None:
        body["usage"] = usage_json
    return body


class ChunkEncoder:
    """The ``data: {...}`` lines of one streamed completion (``chat.completion.chunk``
    objects sharing one id, model and creation time), then ``data: [DONE]``."""

    def __init__(self, *, completion_id: str, model: str) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = int(time.time())
        # The fixed start of every chunk, serialised once.
        self._head = json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": model,
            }
        )[:-1]

    def _line(self, rest: str) -> bytes:
        return f"data: {self._head}, {rest}}}\n\n".encode()

    def delta(self, delta: dict[str, str], finish: str | None = None) -> bytes:
        """A chunk with one choice's ``delta`` (``role``, ``content`` or
        ``reasoning_content``) and its ``finish_reason`` (null until the end)."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return self._line(f'"choices": [{json.dumps(choice, ensure_ascii=False)}]')

    def usage(self, usage: Usage | None) -> bytes:
        """The last chunk when ``stream_options.include_usage``: no choices, the usage."""
        return self._line(f'"choices": [], "usage": {json.dumps(usage_body(usage))}')

    @staticmethod
    def error(body: dict[str, Any]) -> bytes:
        """An error inside the stream (the reply failed after it began)."""
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()

    DONE = b"data: [DONE]\n\n"
