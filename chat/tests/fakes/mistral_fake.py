"""Responses in Mistral AI's wire format, for ``FakeUpstream``.

Chat: ``POST /v1/chat/completions`` with ``stream: true`` answers Server-Sent Events in
the OpenAI chunk shape (usage in the last chunk) ended by ``data: [DONE]``. Models:
``GET /v1/models``. Errors: JSON such as ``{"object": "error", "message": "...",
"type": "...", "param": null, "code": null}``.

Usage::

    upstream.add("POST", CHAT_PATH, chat_stream(["Hel", "lo"]))
    upstream.add("GET", MODELS_PATH, models_response(["mistral-small-latest"]))
    upstream.add("POST", CHAT_PATH, error_response(429, headers={"Retry-After": "0"}))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def chat_events(
    texts: Sequence[str],
    *,
    finish_reason: str = "stop",
    usage: tuple[int, int] | None = (10, 5),
    model: str = DEFAULT_MODEL,
    done: bool = True,
) -> list[bytes]:
    """The SSE events of a whole reply, as Mistral sends them: a first chunk with the
    role, one chunk per text, a last one with the finish reason and usage, [DONE]."""
    events = [sse(chunk("", role="assistant", model=model))]
    events += [sse(chunk(text, model=model)) for text in texts]
    events.append(sse(chunk("", finish_reason=finish_reason, usage=usage, model=model)))
    if done:
        events.append(sse("[DONE]"))
    return events


def chat_stream(
    texts: Sequence[str] = ("Hello", " there"),
    *,
    finish_reason: str = "stop",
    usage: tuple[int, int] | None = (10, 5),
    model: str = DEFAULT_MODEL,
    pause: float = 0.0,
    delay: float = 0.0,
) -> StreamResponse:
    """A streamed reply; ``pause`` seconds between events, ``delay`` before the head."""
    events: list[bytes | Pause] = []
    for event in chat_events(texts, finish_reason=finish_reason, usage=usage, model=model):
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


def model_card(model_id: str, *, chat: bool = True) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": 1_760_000_000,
        "owned_by": "mistralai",
        "type": "base",
        "capabilities": {"completion_chat": chat, "function_calling": chat},
        "max_context_length": 131072,
        "aliases": [],
    }


def models_response(chat_ids: Iterable[str], *, other_ids: Iterable[str] = ()) -> JsonResponse:
    """``GET /v1/models``: chat models, plus ``other_ids`` that cannot chat (embeddings)."""
    data = [model_card(i) for i in chat_ids] + [model_card(i, chat=False) for i in other_ids]
    return JsonResponse({"object": "list", "data": data})


def not_found(request: RecordedRequest) -> JsonResponse:
    """Mistral's answer to an unknown path."""
    return JsonResponse({"detail": "Not Found"}, status=404)


def install(upstream: FakeUpstream) -> FakeUpstream:
    """Make unmatched requests answer like Mistral does."""
    upstream.not_found = not_found
    return upstream
