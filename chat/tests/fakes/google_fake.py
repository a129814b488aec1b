"""The Gemini API (generativelanguage.googleapis.com) wire format, for FakeUpstream.

What the google-genai SDK sends and expects:

* ``POST /{version}/models/{model}:streamGenerateContent?alt=sse`` with the key in the
  ``x-goog-api-key`` header and a JSON body ``{"contents": [...], "systemInstruction":
  {...}, "generationConfig": {...}}``; the answer is Server-Sent Events, each ``data:``
  one ``GenerateContentResponse`` (``candidates[0].content.parts[].text``,
  ``finishReason`` on the last one, ``usageMetadata`` with running totals).
* ``GET /{version}/models`` lists models (``name`` is ``"models/<id>"``).
* Errors are ``{"error": {"code", "message", "status", "details"}}``; a bad key is a
  400 with reason ``API_KEY_INVALID``.

Shapes the real API sends in streams, each with a builder here: ``usageMetadata`` on every
event or on the last one only; a last event with ``finishReason`` and no content, or with
an empty part; thought-summary parts (``"thought": true``); ``finishReason: "SAFETY"``
(and RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII...) with ``safetyRatings`` and no
content (``safety_block``); a blocked prompt (``promptFeedback.blockReason``, no
candidates: ``blocked_prompt``); ``citationMetadata`` and ``finishMessage`` on a candidate.
``check_contents`` answers what the API answers to a history it rejects (``validated``).

The version segment (``v1``, ``v1beta``) is whatever the SDK uses; the routes accept any.
Point the app at the fake with ``GOOGLE_BASE_URL=<upstream.url>`` and use
``reply(upstream, "Hello")`` / ``set_models(upstream, [...])``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .server import Break, FakeUpstream, JsonResponse, Pause, RecordedRequest, StreamResponse

VERSION = r"/v1[a-z0-9]*"
MODELS_PATH = VERSION + r"/models"
STREAM_PATH = VERSION + r"/models/[^/:]+:streamGenerateContent"

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def stream_path(model: str) -> str:
    """The route regex of one model's streaming endpoint."""
    return VERSION + rf"/models/{model}:streamGenerateContent"


def event(data: dict[str, Any]) -> bytes:
    """One SSE event as Google sends it (CRLF line ends)."""
    return f"data: {json.dumps(data)}\r\n\r\n".encode()


def usage_metadata(prompt_tokens: int, output_tokens: int, thoughts_tokens: int = 0) -> dict:
    usage = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens + thoughts_tokens,
    }
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return usage


SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
]


def chunk(
    text: str | None = None,
    *,
    finish_reason: str | None = None,
    usage: dict | None = None,
    thought: bool = False,
    model: str = "gemini-3.5-flash",
    parts: list[dict[str, Any]] | None = None,
    finish_message: str | None = None,
    safety_ratings: list[dict[str, Any]] | None = None,
    citations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One GenerateContentResponse of a stream. ``parts`` replaces the single text part
    (``[]`` or ``[{"text": ""}]`` for the empty shapes); without text or parts the
    candidate has no content at all."""
    candidate: dict[str, Any] = {"index": 0}
    if text is not None:
        part: dict[str, Any] = {"text": text}
        if thought:
            part["thought"] = True
        candidate["content"] = {"role": "model", "parts": [part]}
    elif parts is not None:
        candidate["content"] = {"role": "model", "parts": parts}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    if finish_message:
        candidate["finishMessage"] = finish_message
    if safety_ratings is not None:
        candidate["safetyRatings"] = safety_ratings
    if citations is not None:
        candidate["citationMetadata"] = {"citationSources": citations}
    data: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if usage is not None:
        data["usageMetadata"] = usage
    return data


def safety_block(reason: str = "SAFETY", *, prompt_tokens: int = 7) -> dict[str, Any]:
    """The event of a reply a filter stopped: ``finishReason`` with the safety ratings
    and no content (Google: "the content field is empty if content filters block the
    output")."""
    return chunk(
        finish_reason=reason,
        safety_ratings=SAFETY_RATINGS,
        usage=usage_metadata(prompt_tokens, 0),
    )


def blocked_prompt(reason: str = "OTHER", *, prompt_tokens: int = 7) -> dict[str, Any]:
    """The one event of a request whose prompt was blocked: ``promptFeedback`` with the
    block reason, usage, and no candidates at all."""
    return {
        "promptFeedback": {"blockReason": reason, "safetyRatings": SAFETY_RATINGS},
        "usageMetadata": usage_metadata(prompt_tokens, 0),
        "modelVersion": "gemini-3.5-flash",
    }


def text_stream(
    *texts: str,
    finish_reason: str | None = "STOP",
    prompt_tokens: int = 7,
    output_tokens: int | None = None,
    pause: float = 0.0,
    end: Break | None = None,
    usage_on_every_event: bool = True,
) -> StreamResponse:
    """A streamed reply: one event per text, the last also carrying ``finishReason``
    (none at all with ``finish_reason=None``: a stream a proxy ended early) and the
    final usage; with ``usage_on_every_event=False`` only the last event has usage.
    ``pause`` waits between events; ``end=Break()`` drops the connection instead of
    finishing (a stream broken halfway)."""
    output = len(texts) if output_tokens is None else output_tokens
    items: list[Any] = []
    for i, text in enumerate(texts):
        last = i == len(texts) - 1 and end is None
        if i and pause:
            items.append(Pause(pause))
        usage = usage_metadata(prompt_tokens, output if last else i + 1)
        if not last and not usage_on_every_event:
            usage = None
        items.append(event(chunk(text, finish_reason=finish_reason if last else None, usage=usage)))
    if end is not None:
        items.append(end)
    elif not texts:
        usage = usage_metadata(prompt_tokens, output)
        items.append(event(chunk(finish_reason=finish_reason, usage=usage)))
    return StreamResponse(items)


def events(*chunks: dict[str, Any] | Pause | Break) -> StreamResponse:
    """A stream of hand-made chunks (and Pause/Break items)."""
    return StreamResponse([c if isinstance(c, (Pause, Break)) else event(c) for c in chunks])


def error_body(
    code: int,
    message: str,
    *,
    status: str | None = None,
    reason: str | None = None,
    retry_delay: str | None = None,
) -> dict[str, Any]:
    """Google's error JSON. ``reason`` adds an ErrorInfo, ``retry_delay`` ("3s") a
    RetryInfo, as the real API does for bad keys and quota errors."""
    details: list[dict[str, Any]] = []
    if reason:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        )
    if retry_delay:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status or _STATUS_NAMES.get(code, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def error_response(
    code: int,
    message: str = "",
    *,
    status: str | None = None,
    reason: str | None = None,
    retry_delay: str | None = None,
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
) -> JsonResponse:
    body = error_body(
        code,
        message or f"fake {code}",
        status=status,
        reason=reason,
        retry_delay=retry_delay,
    )
    return JsonResponse(body, status=code, headers=dict(headers or {}), delay=delay)


def check_contents(body: Any) -> str | None:
    """The 400 message the Gemini API answers for the ``contents`` of a request it
    rejects, or None when it accepts them: roles user/model, every part with text or
    inline data (base64 ``data`` and a ``mimeType``), user and model alternating, the
    first and the last turn the user's."""
    contents = body.get("contents") if isinstance(body, dict) else None
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            return "Please use a valid role: user, model."
        if not content.get("parts"):
            return (
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        for j, part in enumerate(content["parts"]):
            inline = part.get("inlineData") or part.get("inline_data")
            if inline is not None:
                if not inline.get("data") or not (
                    inline.get("mimeType") or inline.get("mime_type")
                ):
                    return (
                        f"* GenerateContentRequest.contents[{i}].parts[{j}].inline_data: "
                        "data and mime_type are required"
                    )
                continue
            if not part.get("text"):
                return (
                    f"* GenerateContentRequest.contents[{i}].parts[{j}].data: required oneof "
                    "field 'data' must have one initialized field"
                )
    for previous, current in itertools.pairwise(contents):
        if previous["role"] == current["role"]:
            return "Please ensure that multiturn requests alternate between user and model."
    if contents[0]["role"] != "user" or contents[-1]["role"] != "user":
        return "Please ensure that multiturn requests ends with a user role or a function response."
    return None


def validated(response: StreamResponse | Callable[[], StreamResponse]) -> Callable[..., Any]:
    """A route handler that answers ``response`` (or builds it) when the request's
    contents are valid, and the API's 400 INVALID_ARGUMENT when they are not."""

    def handler(request: RecordedRequest) -> JsonResponse | StreamResponse:
        problem = check_contents(request.json())
        if problem:
            return error_response(400, problem)
        return response() if callable(response) else response

    return handler


def invalid_key() -> JsonResponse:
    """What Google answers to a wrong API key."""
    return error_response(
        400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID"
    )


def model_not_found(model: str) -> JsonResponse:
    return error_response(
        404,
        f"models/{model} is not found for API version v1beta, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods.",
    )


def rate_limited(retry_after: str | None = "0", retry_delay: str | None = None) -> JsonResponse:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error_response(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        retry_delay=retry_delay,
        headers=headers,
    )


def model_entry(
    model_id: str,
    *,
    methods: Sequence[str] = ("generateContent", "countTokens"),
    display_name: str | None = None,
    thinking: bool | None = None,
) -> dict[str, Any]:
    """One model of ``GET /models``; ``thinking`` (whether it thinks) is left out unless
    given, as older entries have it."""
    entry: dict[str, Any] = {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": display_name or model_id,
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": list(methods),
    }
    if thinking is not None:
        entry["thinking"] = thinking
    return entry


def models_response(
    models: Iterable[str | dict[str, Any]], next_page_token: str | None = None
) -> JsonResponse:
    """A page of ``GET /models``; plain ids become chat models."""
    entries = [m if isinstance(m, dict) else model_entry(m) for m in models]
    body: dict[str, Any] = {"models": entries}
    if next_page_token:
        body["nextPageToken"] = next_page_token
    return JsonResponse(body)


# -- for app and browser tests -----------------------------------------------------------


def install(upstream: FakeUpstream) -> FakeUpstream:
    """Answer unknown routes the way Google does (a 404 error body)."""
    upstream.not_found = lambda r: error_response(404, f"Method not found: {r.route_path}")
    return upstream


def reply(upstream: FakeUpstream, *texts: str, model: str | None = None, **kwargs: Any) -> None:
    """Queue one streamed reply (see ``text_stream`` for the options)."""
    path = stream_path(model) if model else STREAM_PATH
    upstream.add("POST", path, text_stream(*texts, **kwargs))


def set_default_reply(upstream: FakeUpstream, *texts: str, **kwargs: Any) -> None:
    """Answer every streaming request with the same reply (built fresh each time)."""
    upstream.set_default("POST", STREAM_PATH, lambda _request: text_stream(*texts, **kwargs))


def set_models(upstream: FakeUpstream, models: Iterable[str | dict[str, Any]]) -> None:
    upstream.set_default("GET", MODELS_PATH, models_response(list(models)))
