"""Responses in Mistral AI's wire format, for ``FakeUpstream``.

Chat: ``POST /v1/chat/completions`` with ``stream: true`` answers Server-Sent Events in
the OpenAI chunk shape (usage in the last chunk) ended by ``data: [DONE]``. Models:
``GET /v1/models``. Errors: JSON such as ``{"object": "error", "message": "...",
"type": "...", "param": null, "code": null}``.

Stream shapes the real API sends, each with a builder: a first chunk with the role and
``"content": ""``; usage in the last chunk only; reasoning models' (Magistral) content as
a list of ``thinking`` and ``text`` chunks (``thinking_chunk``, ``text_chunk``);
``finish_reason`` ``length``/``model_length``/``error``; an error object as an event
(``error_event``). ``check_messages`` answers what the API answers to a history its
validator rejects (``validated``).

Usage::

    upstream.add("POST", CHAT_PATH, chat_stream(["Hel", "lo"]))
    upstream.add("GET", MODELS_PATH, models_response(["mistral-small-latest"]))
    upstream.add("POST", CHAT_PATH, error_response(429, headers={"Retry-After": "0"}))
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from chat.tests.fakes.server import (
    Break,
    FakeUpstream,
    JsonResponse,
    Pause,
    RecordedRequest,
    StreamResponse,
    sse,
)

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
DEFAULT_MODEL = "mistral-small-latest"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    422: "invalid_request_error",
    429: "rate_limited",
}


def chunk(
    content: str | list[dict[str, Any]] | None = None,
    *,
    role: str | None = None,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = None,
    model: str = DEFAULT_MODEL,
    chunk_id: str = "cmpl-fake",
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``usage`` is (prompt_tokens, completion_tokens)."""
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    data: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        prompt, completion = usage
        data["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return data


def thinking_chunk(text: str) -> dict[str, Any]:
    """A reasoning model's thinking, as one typed content chunk."""
    return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}


def text_chunk(text: str) -> dict[str, Any]:
    """Reply text as one typed content chunk (reasoning models send text this way)."""
    return {"type": "text", "text": text}


def chat_events(
    texts: Sequence[str],
    *,
    finish_reason: str | None = "stop",
    usage: tuple[int, int] | None = (10, 5),
    model: str = DEFAULT_MODEL,
    done: bool = True,
    thinking: Sequence[str] = (),
) -> list[bytes]:
    """The SSE events of a whole reply, as Mistral sends them: a first chunk with the
    role, one chunk per ``thinking`` text and then per text (both as typed content
    chunks when there is thinking, as a reasoning model sends them), a last one with
    the finish reason and usage (left out with ``finish_reason=None``: a stream a proxy
    ended early), [DONE]."""
    events = [sse(chunk("", role="assistant", model=model))]
    events += [sse(chunk([thinking_chunk(text)], model=model)) for text in thinking]
    if thinking:
        events += [sse(chunk([text_chunk(text)], model=model)) for text in texts]
    else:
        events += [sse(chunk(text, model=model)) for text in texts]
    if finish_reason is not None:
        events.append(sse(chunk("", finish_reason=finish_reason, usage=usage, model=model)))
    if done:
        events.append(sse("[DONE]"))
    return events


def error_event(
    message: str = "Internal server error", error_type: str = "internal_server_error"
) -> bytes:
    """An error object sent as an event inside a 200 stream."""
    return sse(
        {"object": "error", "message": message, "type": error_type, "param": None, "code": None}
    )


def chat_stream(
    texts: Sequence[str] = ("Hello", " there"),
    *,
    finish_reason: str | None = "stop",
    usage: tuple[int, int] | None = (10, 5),
    model: str = DEFAULT_MODEL,
    pause: float = 0.0,
    delay: float = 0.0,
    done: bool = True,
    thinking: Sequence[str] = (),
) -> StreamResponse:
    """A streamed reply (see ``chat_events``); ``pause`` seconds between events,
    ``delay`` before the head."""
    events: list[bytes | Pause] = []
    for event in chat_events(
        texts,
        finish_reason=finish_reason,
        usage=usage,
        model=model,
        done=done,
        thinking=thinking,
    ):
        if pause and events:
            events.append(Pause(pause))
        events.append(event)
    return StreamResponse(events, delay=delay)


def broken_stream(
    texts: Sequence[str] = ("Hello",), *, model: str = DEFAULT_MODEL
) -> StreamResponse:
    """A reply whose connection drops after ``texts`` (no finish, no [DONE])."""
    items: list[bytes | Break] = [sse(chunk("", role="assistant", model=model))]
    items += [sse(chunk(text, model=model)) for text in texts]
    items.append(Break())
    return StreamResponse(items)


def raw_stream(items: Iterable[bytes | str | Pause | Break]) -> StreamResponse:
    """A stream of exactly these items (malformed events, custom pauses)."""
    return StreamResponse(list(items))


def error_body(status: int, message: str, *, error_type: str | None = None) -> dict[str, Any]:
    return {
        "object": "error",
        "message": message,
        "type": error_type or _ERROR_TYPES.get(status, "api_error"),
        "param": None,
        "code": None,
    }


def error_response(
    status: int,
    message: str = "",
    *,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
) -> JsonResponse:
    """An error answer in Mistral's shape (401 answers ``{"message": "Unauthorized"}``
    like the real API)."""
    if status == 401 and not message:
        body: dict[str, Any] = {"message": "Unauthorized", "request_id": "req-fake"}
    else:
        body = error_body(status, message or "error", error_type=error_type)
    return JsonResponse(body, status=status, headers=dict(headers or {}), delay=delay)


def invalid_model_response(model: str) -> JsonResponse:
    """What Mistral answers for an unknown model id: a 400 of type ``invalid_model``."""
    return JsonResponse(
        {
            "object": "error",
            "message": f"Invalid model: {model}",
            "type": "invalid_model",
            "param": None,
            "code": "1500",
        },
        status=400,
    )


def model_card(
    model_id: str, *, chat: bool = True, vision: bool = False, reasoning: bool = False
) -> dict[str, Any]:
    """One model of ``GET /v1/models``, its ``capabilities`` as the API sends them."""
    return {
        "id": model_id,
        "object": "model",
        "created": 1_760_000_000,
        "owned_by": "mistralai",
        "type": "base",
        "capabilities": {
            "completion_chat": chat,
            "function_calling": chat,
            "completion_fim": False,
            "fine_tuning": False,
            "vision": vision,
            "reasoning": reasoning,
            "ocr": False,
            "classification": False,
            "moderation": False,
            "audio": False,
        },
        "max_context_length": 131072,
        "aliases": [],
    }


def models_response(
    chat_ids: Iterable[str],
    *,
    other_ids: Iterable[str] = (),
    vision: Iterable[str] = (),
    reasoning: Iterable[str] = (),
) -> JsonResponse:
    """``GET /v1/models``: chat models (those in ``vision`` read images, those in
    ``reasoning`` reason), plus ``other_ids`` that cannot chat (embeddings)."""
    vision, reasoning = set(vision), set(reasoning)
    data = [model_card(i, vision=i in vision, reasoning=i in reasoning) for i in chat_ids]
    data += [model_card(i, chat=False) for i in other_ids]
    return JsonResponse({"object": "list", "data": data})


# The order Mistral's validator allows: the roles that may follow each role.
_MAY_FOLLOW = {
    "system": {"system", "user", "assistant"},
    "user": {"user", "assistant", "system"},
    "assistant": {"assistant", "user", "tool"},
    "tool": {"assistant", "tool"},
}


def check_messages(messages: Any) -> tuple[str, str] | None:
    """(message, type) of the 400 Mistral answers for a ``messages`` list its validator
    (mistral-common ``MistralRequestValidator``, serving mode) rejects, or None when it
    accepts it."""
    if not isinstance(messages, list) or not messages:
        return "Conversation must have at least one message", "invalid_request_error"
    if len(messages) == 1 and messages[0].get("role") not in ("user", "system"):
        return (
            "Conversation must start with a user message or system message",
            "invalid_request_message_order",
        )
    last = messages[-1]
    if len(messages) > 1 and last.get("role") not in ("user", "tool") and not last.get("prefix"):
        return (
            "Expected last role User or Tool (or Assistant with prefix True) for serving "
            f"but got {last.get('role')}",
            "invalid_request_message_order",
        )
    for previous, message in itertools.pairwise(messages):
        if message.get("role") not in _MAY_FOLLOW.get(previous.get("role"), set()):
            return (
                f"Unexpected role '{message.get('role')}' after role '{previous.get('role')}'",
                "invalid_request_message_order",
            )
    for message in messages:
        if message.get("role") == "assistant" and bool(message.get("content")) == bool(
            message.get("tool_calls")
        ):
            return (
                "Assistant message must have either content or tool_calls, but not both.",
                "invalid_request_error",
            )
    return None


def validated(response: StreamResponse | Callable[[], StreamResponse]) -> Callable[..., Any]:
    """A route handler that answers ``response`` (or builds it) when the request's
    messages pass Mistral's validator, and its 400 when they do not."""

    def handler(request: RecordedRequest) -> JsonResponse | StreamResponse:
        problem = check_messages(request.json().get("messages"))
        if problem:
            message, error_type = problem
            body = error_body(400, message, error_type=error_type)
            if error_type == "invalid_request_message_order":
                body["code"] = "3230"
            return JsonResponse(body, status=400)
        return response() if callable(response) else response

    return handler


def not_found(request: RecordedRequest) -> JsonResponse:
    """Mistral's answer to an unknown path."""
    return JsonResponse({"detail": "Not Found"}, status=404)


def install(upstream: FakeUpstream) -> FakeUpstream:
    """Make unmatched requests answer like Mistral does."""
    upstream.not_found = not_found
    return upstream
