"""Anthropic's wire format for the fake upstream (Messages API version 2026-10-21).

Builders for the JSON bodies and the Server-Sent Events stream of ``POST /v1/messages``,
the ``GET /v1/models`` list and the error bodies, plus ``install`` that makes a
``FakeUpstream`` answer like the Claude API. Point the SDK (or ``ANTHROPIC_BASE_URL``) at
``upstream.url``: the SDK adds ``/v1/...`` itself.

The stream is what the API really sends (docs: build-with-claude/streaming): named events,
``ping`` keep-alives (also between blocks), ``thinking`` blocks with ``thinking_delta`` and
``signature_delta``, ``redacted_thinking`` blocks with no readable text, a ``message_delta``
with the stop reason (``stop_details`` for refusals) and cumulative usage, ``message_stop``;
``error`` events mid-stream. ``check_messages`` rejects the histories the API rejects, with
its real 400 messages.

Usage::

    install(upstream, reply="Hello there")                 # every request answers this
    upstream.add("POST", MESSAGES_PATH, error_response(429, headers={"retry-after": "0"}))
    upstream.add("POST", MESSAGES_PATH, stream_response(["Hel", "lo"]))
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .server import Break, FakeUpstream, JsonResponse, Pause, RecordedRequest, StreamResponse, sse

MESSAGES_PATH = "/v1/messages"
MODELS_PATH = "/v1/models"
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MODEL_IDS = ("claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5")

# The error ``type`` Anthropic sends with each HTTP status.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_DEFAULT_ERROR_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out.",
    "overloaded_error": "Overloaded",
}

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):06d}"


# --- Errors -----------------------------------------------------------------------------


def error_type_for_status(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(error_type: str, message: str = "") -> dict[str, Any]:
    """The JSON body of an Anthropic error (also the data of a mid-stream ``error`` event)."""
    return {
        "type": "error",
        "error": {
            "type": error_type,
            "message": message or _DEFAULT_ERROR_MESSAGES.get(error_type, "Error"),
        },
        "request_id": _id("req"),
    }


def error_response(
    status: int,
    message: str = "",
    *,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
) -> JsonResponse:
    """An HTTP error as the Claude API sends it, e.g. ``error_response(429,
    headers={"retry-after": "1"})`` or ``error_response(529)`` (overloaded)."""
    body = error_body(error_type or error_type_for_status(status), message)
    return JsonResponse(
        body,
        status=status,
        headers={"request-id": body["request_id"], **(headers or {})},
        delay=delay,
    )


def error_event(error_type: str = "overloaded_error", message: str = "") -> bytes:
    """A mid-stream ``error`` event (the HTTP status was already 200)."""
    return sse(error_body(error_type, message), event="error")


def model_not_found(model: str) -> JsonResponse:
    return error_response(404, f"model: {model}")


# --- Messages ---------------------------------------------------------------------------


def message_json(
    text: str = "Hello!",
    *,
    model: str = DEFAULT_MODEL,
    input_tokens: int = 12,
    output_tokens: int | None = None,
    stop_reason: str = "end_turn",
) -> dict[str, Any]:
    """A complete (non-streamed) Message."""
    return {
        "id": _id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": _count_tokens(text) if output_tokens is None else output_tokens,
        },
    }


def stream_events(
    chunks: Sequence[str] = ("Hello", "!"),
    *,
    model: str = DEFAULT_MODEL,
    input_tokens: int = 12,
    output_tokens: int | None = None,
    stop_reason: str | None = "end_turn",
    stop_details: dict[str, Any] | None = None,
    thinking: str | None = None,
    redacted_thinking: bool = False,
    thinking_tokens: int | None = None,
    ping: bool = True,
    chunk_delay: float = 0.0,
) -> list[bytes | Pause]:
    """The SSE sequence of one streamed reply: message_start (with input usage), ping,
    an optional thinking block (``thinking``: its text, sent as two deltas, then its
    signature) and/or redacted_thinking block, one text block made of ``chunks`` (no
    text block when ``chunks`` is empty), message_delta (stop reason and details,
    output usage with ``thinking_tokens`` broken out when given) and message_stop.
    ``chunk_delay`` pauses before each chunk."""
    items: list[bytes | Pause] = [
        sse(
            {
                "type": "message_start",
                "message": {
                    "id": _id("msg"),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            },
            event="message_start",
        )
    ]
    if ping:
        items.append(sse({"type": "ping"}, event="ping"))
    index = 0
    if thinking is not None:
        half = len(thinking) // 2
        items.append(_block_start(index, {"type": "thinking", "thinking": "", "signature": ""}))
        for piece in (thinking[:half], thinking[half:]):
            if piece:
                items.append(_block_delta(index, {"type": "thinking_delta", "thinking": piece}))
        items += [
            _block_delta(index, {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}),
            _block_stop(index),
        ]
        index += 1
    if redacted_thinking:
        block = {"type": "redacted_thinking", "data": "RW5jcnlwdGVkIHRoaW5raW5n"}
        items += [_block_start(index, block), _block_stop(index)]
        index += 1
    if chunks:
        items.append(_block_start(index, {"type": "text", "text": ""}))
        for chunk in chunks:
            if chunk_delay:
                items.append(Pause(chunk_delay))
            items.append(_block_delta(index, {"type": "text_delta", "text": chunk}))
        items.append(_block_stop(index))
    usage: dict[str, Any] = {
        "output_tokens": _count_tokens("".join(chunks)) if output_tokens is None else output_tokens
    }
    if thinking_tokens is not None:
        usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    items += [
        sse(
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "stop_details": stop_details,
                },
                "usage": usage,
            },
            event="message_delta",
        ),
        sse({"type": "message_stop"}, event="message_stop"),
    ]
    return items


def without_end(events: list[bytes | Pause]) -> list[bytes | Pause]:
    """``events`` without message_delta and message_stop: a stream a proxy ended cleanly
    before the API said why the reply stopped."""
    return [
        e
        for e in events
        if not (isinstance(e, bytes) and (b"event: message_delta" in e or b"message_stop" in e))
    ]


def stream_response(
    chunks: Sequence[str] = ("Hello", "!"),
    *,
    status: int = 200,
    delay: float = 0.0,
    **kwargs: Any,
) -> StreamResponse:
    """A streamed reply (see ``stream_events`` for the options)."""
    return StreamResponse(
        stream_events(chunks, **kwargs),
        status=status,
        headers={"request-id": _id("req")},
        delay=delay,
    )


def broken_stream(chunks: Sequence[str] = ("Hello", " wor"), **kwargs: Any) -> StreamResponse:
    """A reply whose connection drops after ``chunks`` (no message_delta, no message_stop)."""
    events = stream_events(chunks, **kwargs)
    last_text = max(
        (i for i, e in enumerate(events) if isinstance(e, bytes) and b'"text_delta"' in e),
        default=len(events) - 3,  # no chunks: cut before message_delta
    )
    return StreamResponse([*events[: last_text + 1], Break()], headers={"request-id": _id("req")})


def _block_start(index: int, block: dict[str, Any]) -> bytes:
    return sse(
        {"type": "content_block_start", "index": index, "content_block": block},
        event="content_block_start",
    )


def _block_delta(index: int, delta: dict[str, Any]) -> bytes:
    return sse(
        {"type": "content_block_delta", "index": index, "delta": delta},
        event="content_block_delta",
    )


def _block_stop(index: int) -> bytes:
    return sse({"type": "content_block_stop", "index": index}, event="content_block_stop")


def _count_tokens(text: str) -> int:
    return max(1, len(re.findall(r"\w+|[^\w\s]", text)))


def split_reply(text: str) -> list[str]:
    """Cut a reply into word-sized stream chunks (each keeps its leading space)."""
    return re.findall(r"\s*\S+", text) or [text]


# --- Models -----------------------------------------------------------------------------


def capabilities_json(
    *,
    images: bool = True,
    pdf: bool = True,
    thinking: bool = True,
    thinking_budget: bool = True,
    effort: bool = True,
) -> dict[str, Any]:
    """A model's ``capabilities`` in the model list, every key present (as the API sends
    them): image and PDF input, thinking (``types.enabled``: a manual budget, and
    ``adaptive``), effort levels, and the rest supported."""

    def yes(value: bool = True) -> dict[str, bool]:
        return {"supported": value}

    return {
        "batch": yes(),
        "citations": yes(),
        "code_execution": yes(),
        "context_management": {"supported": True},
        "effort": {
            "supported": effort,
            "low": yes(effort),
            "medium": yes(effort),
            "high": yes(effort),
            "max": yes(effort),
        },
        "image_input": yes(images),
        "pdf_input": yes(pdf),
        "server_tools": {"supported": True},
        "structured_outputs": yes(),
        "thinking": {
            "supported": thinking,
            "types": {
                "adaptive": yes(thinking),
                "between_tools": yes(False),
                "disabled": yes(),
                "enabled": yes(thinking and thinking_budget),
            },
        },
    }


def models_json(
    ids: Iterable[str] = DEFAULT_MODEL_IDS,
    *,
    retired: Iterable[str] = (),
    capabilities: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One page of ``GET /v1/models`` (newest first, as the API lists them).
    ``capabilities`` gives some models a ``capabilities`` object (``capabilities_json``);
    the others have none."""
    capabilities = capabilities or {}
    data = [_model_info(model_id, "active", capabilities.get(model_id)) for model_id in ids]
    data += [_model_info(model_id, "retired") for model_id in retired]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def models_response(ids: Iterable[str] = DEFAULT_MODEL_IDS, **kwargs: Any) -> JsonResponse:
    return JsonResponse(models_json(ids, **kwargs))


def _model_info(
    model_id: str, lifecycle: str, capabilities: dict[str, Any] | None = None
) -> dict[str, Any]:
    name = model_id.removeprefix("claude-").replace("-", " ").title()
    info: dict[str, Any] = {
        "type": "model",
        "id": model_id,
        "display_name": f"Claude {name}",
        "created_at": "2026-10-07T00:00:00Z",
        "lifecycle": lifecycle,
        "deprecated_at": None,
        "retires_at": None,
        "max_input_tokens": 1_000_000,
        "max_tokens": 128_000,
    }
    if capabilities is not None:
        info["capabilities"] = capabilities
    return info


# --- What the API accepts -------------------------------------------------------------


def check_messages(messages: Any) -> str | None:
    """The 400 message the Messages API answers for a ``messages`` list it rejects, or
    None when it accepts it: turns must start with the user, have text, and (current
    models) end with the user. Consecutive turns of one role are rejected as earlier API
    versions did (current ones combine them): a history valid here is valid for both."""
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return 'messages: first message must use the "user" role'
    for previous, message in itertools.pairwise(messages):
        if message.get("role") == previous.get("role"):
            role = message.get("role")
            return (
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
    for message in messages:
        if not _has_text(message.get("content")):
            return (
                "messages: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
    if messages[-1].get("role") == "assistant":
        return (
            "This model does not support assistant message prefill. The conversation "
            "must end with a user message."
        )
    return None


def _has_text(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content)
    if isinstance(content, list):
        return bool(content) and all(
            block.get("type") != "text" or bool(block.get("text")) for block in content
        )
    return False


_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def check_blocks(messages: Any) -> str | None:
    """The 400 message for an image or document block the API rejects (a source that
    is not base64 of an accepted type, a block type it does not know), or None."""
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        content = message.get("content")
        for j, block in enumerate(content if isinstance(content, list) else ()):
            kind = block.get("type")
            source = block.get("source") or {}
            where = f"messages.{i}.content.{j}"
            if kind == "text":
                continue
            if kind not in ("image", "document"):
                return f"{where}.type: Input tag '{kind}' found using 'type' does not match"
            allowed = _IMAGE_TYPES if kind == "image" else ("application/pdf",)
            if source.get("type") != "base64" or source.get("media_type") not in allowed:
                return f"{where}.source: Input does not match the expected {kind} source"
            if not source.get("data"):
                return f"{where}.source.data: the {kind} is empty"
    return None


def check_thinking(body: dict[str, Any]) -> str | None:
    """The 400 message for a ``thinking`` setting the API rejects: a budget under 1,024
    tokens or not under ``max_tokens``, or a temperature beside it; None when fine."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    if budget >= body.get("max_tokens", 0):
        return "`max_tokens` must be greater than `thinking.budget_tokens`."
    if "temperature" in body:
        return "`temperature` may only be set to 1 when thinking is enabled."
    return None


# --- A whole fake Claude API ------------------------------------------------------------


def request_api_key(request: RecordedRequest) -> str:
    """The key a request carries: ``x-api-key`` or ``Authorization: Bearer`` (SDK 2.x)."""
    if request.headers.get("x-api-key"):
        return request.headers["x-api-key"]
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else ""


def install(
    upstream: FakeUpstream,
    *,
    reply: str | Callable[[dict[str, Any]], str] = "Hello from the fake Claude.",
    models: Sequence[str] = DEFAULT_MODEL_IDS,
    api_key: str | None = None,
    chunk_delay: float = 0.0,
    thinking: str = "Let me think about that.",
    capabilities: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Make ``upstream`` answer like the Claude API, as route defaults (queued responses
    added later with ``upstream.add`` still win, once each).

    ``reply`` is the text of every answer, or a function of the request body returning it.
    With ``api_key`` set, a request carrying another key gets a 401. A model not in
    ``models`` gets a 404; a history the API rejects gets its 400 (``check_messages``,
    ``check_blocks``), as does a thinking setting it rejects (``check_thinking``). A
    request with thinking enabled streams ``thinking`` first as a thinking block.
    ``capabilities`` (model id -> ``capabilities_json(...)``) goes into the model list.
    ``chunk_delay`` slows the stream (for Stop buttons and spinners)."""

    def check(request: RecordedRequest) -> JsonResponse | None:
        if api_key is not None and request_api_key(request) != api_key:
            return error_response(401)
        if not request.headers.get("anthropic-version"):
            return error_response(400, "anthropic-version: header is required")
        return None

    def messages(request: RecordedRequest) -> JsonResponse | StreamResponse:
        rejected = check(request)
        if rejected is not None:
            return rejected
        try:
            body = request.json()
        except json.JSONDecodeError:
            return error_response(400, "There was an issue with the request body.")
        model = body.get("model", "")
        if model not in models:
            return model_not_found(model)
        if "max_tokens" not in body:
            return error_response(400, "max_tokens: Field required")
        problem = (
            check_messages(body.get("messages"))
            or check_blocks(body.get("messages"))
            or check_thinking(body)
        )
        if problem:
            return error_response(400, problem)
        text = reply(body) if callable(reply) else reply
        thinks = (body.get("thinking") or {}).get("type") == "enabled"
        if body.get("stream"):
            return stream_response(
                split_reply(text),
                model=model,
                chunk_delay=chunk_delay,
                thinking=thinking if thinks else None,
                # Output tokens include the thinking, broken out apart.
                output_tokens=_count_tokens(text) + _count_tokens(thinking) if thinks else None,
                thinking_tokens=_count_tokens(thinking) if thinks else None,
            )
        return JsonResponse(message_json(text, model=model), headers={"request-id": _id("req")})

    def model_list(request: RecordedRequest) -> JsonResponse:
        return check(request) or models_response(models, capabilities=capabilities)

    upstream.set_default("POST", MESSAGES_PATH, messages)
    upstream.set_default("GET", MODELS_PATH, model_list)
    upstream.not_found = lambda r: error_response(404, "Not Found")
