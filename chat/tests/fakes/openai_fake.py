"""OpenAI's wire format on a ``FakeUpstream``: Chat Completions (plain and streamed),
the models list and error bodies.

The same shapes serve every OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM
Studio, OpenRouter...), so app, browser and benchmark tests can point an
OpenAI-compatible provider at ``upstream.url + "/v1"`` and drive it with these helpers::

    install_openai_stream(upstream, ["Hel", "lo"], usage=(12, 3))
    install_openai_models(upstream, ["gpt-4o-mini", "text-embedding-3-small"])
    install_openai_error(upstream, 429, "slow down", headers={"retry-after": "1"})

Builders (``chat_completion``, ``stream_chunks``, ``error_body``...) return plain data,
for tests that assemble their own responses. Every ``install_*`` takes ``path`` (the
route regex, by default ``/v1/chat/completions`` or ``/v1/models``) and ``default``:
``False`` queues the response for one request, ``True`` answers every request.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .server import Break, FakeUpstream, JsonResponse, Pause, Response, StreamResponse, sse

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
DONE = b"data: [DONE]\n\n"

_ids = itertools.count(1)

# The error ``type`` and ``code`` OpenAI sends with each status.
_ERROR_SHAPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
}


def _completion_id() -> str:
    return f"chatcmpl-fake{next(_ids)}"


# --- Builders (plain data) --------------------------------------------------------------


def usage_body(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_completion(
    text: str,
    *,
    model: str = "gpt-4o-mini",
    usage: tuple[int, int] = (10, 5),
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` object."""
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_body(usage),
    }


def chunk(
    completion_id: str,
    *,
    model: str = "gpt-4o-mini",
    delta: Mapping[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = None,
    with_choice: bool = True,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``. With ``include_usage`` OpenAI sends ``usage: null``
    on every chunk and the usage on a last chunk whose ``choices`` is empty."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": (
            [
                {
                    "index": 0,
                    "delta": dict(delta or {}),
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ]
            if with_choice
            else []
        ),
        "usage": usage_body(usage) if usage is not None else None,
    }


def stream_chunks(
    deltas: Sequence[str],
    *,
    model: str = "gpt-4o-mini",
    usage: tuple[int, int] | None = (10, 5),
    finish_reason: str | None = "stop",
    pause: float = 0.0,
    break_after: int | None = None,
    done: bool = True,
) -> list[bytes | Pause | Break]:
    """The SSE body of a streamed reply, as OpenAI sends it with
    ``stream_options={"include_usage": True}``: a first chunk with the role, one chunk per
    text delta, a chunk with the finish reason, the usage chunk, then ``data: [DONE]``.

    ``pause`` waits before each text delta (a slow model); ``break_after=n`` drops the
    connection after ``n`` text deltas (an upstream failing mid-reply); ``usage=None``
    or ``finish_reason=None`` leave those chunks out; ``done=False`` ends the body
    without ``[DONE]``.
    """
    completion_id = _completion_id()
    items: list[bytes | Pause | Break] = [
        sse(chunk(completion_id, model=model, delta={"role": "assistant", "content": ""}))
    ]
    for i, text in enumerate(deltas):
        if break_after is not None and i >= break_after:
            items.append(Break())
            return items
        if pause:
            items.append(Pause(pause))
        items.append(sse(chunk(completion_id, model=model, delta={"content": text})))
    if break_after is not None:
        items.append(Break())
        return items
    if finish_reason is not None:
        items.append(sse(chunk(completion_id, model=model, finish_reason=finish_reason)))
    if usage is not None:
        items.append(sse(chunk(completion_id, model=model, usage=usage, with_choice=False)))
    if done:
        items.append(DONE)
    return items


def models_body(model_ids: Iterable[str], *, owned_by: str = "openai") -> dict[str, Any]:
    """The ``GET /v1/models`` list."""
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": owned_by}
            for model_id in model_ids
        ],
    }


def error_body(
    status: int,
    message: str,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, with OpenAI's type and code
    for the status unless given."""
    default_type, default_code = _ERROR_SHAPES.get(status, ("invalid_request_error", None))
    return {
        "error": {
            "message": message,
            "type": type or default_type,
            "param": param,
            "code": code if code is not None else default_code,
        }
    }


def error_response(
    status: int,
    message: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
    delay: float = 0.0,
) -> JsonResponse:
    return JsonResponse(
        error_body(status, message or f"fake error {status}", code=code),
        status=status,
        headers=dict(headers or {}),
        delay=delay,
    )


def stream_response(
    deltas: Sequence[str],
    *,
    delay: float = 0.0,
    **kwargs: Any,
) -> StreamResponse:
    """A ``StreamResponse`` carrying ``stream_chunks(deltas, **kwargs)``; the chunks are
    built per request, so a default route can answer many requests."""
    return StreamResponse(lambda: stream_chunks(deltas, **kwargs), delay=delay)


# --- Installers -------------------------------------------------------------------------


def _install(
    upstream: FakeUpstream, method: str, path: str, response: Response, default: bool
) -> None:
    if default:
        upstream.set_default(method, path, response)
    else:
        upstream.add(method, path, response)


def install_openai_stream(
    upstream: FakeUpstream,
    deltas: Sequence[str],
    *,
    usage: tuple[int, int] | None = (10, 5),
    finish_reason: str | None = "stop",
    model: str = "gpt-4o-mini",
    path: str = CHAT_PATH,
    pause: float = 0.0,
    delay: float = 0.0,
    break_after: int | None = None,
    default: bool = False,
) -> None:
    """A streamed reply of ``deltas`` on ``POST path``. ``delay`` holds the status line
    back (a slow upstream); see ``stream_chunks`` for the rest."""
    response = stream_response(
        deltas,
        delay=delay,
        model=model,
        usage=usage,
        finish_reason=finish_reason,
        pause=pause,
        break_after=break_after,
    )
    _install(upstream, "POST", path, response, default)


def install_openai_completion(
    upstream: FakeUpstream,
    text: str,
    *,
    usage: tuple[int, int] = (10, 5),
    model: str = "gpt-4o-mini",
    finish_reason: str = "stop",
    path: str = CHAT_PATH,
    delay: float = 0.0,
    default: bool = False,
) -> None:
    """A non-streamed ``chat.completion`` on ``POST path``."""
    body = chat_completion(text, model=model, usage=usage, finish_reason=finish_reason)
    _install(upstream, "POST", path, JsonResponse(body, delay=delay), default)


def install_openai_models(
    upstream: FakeUpstream,
    model_ids: Iterable[str],
    *,
    path: str = MODELS_PATH,
    default: bool = True,
) -> None:
    """The models list on ``GET path`` (by default for every request)."""
    _install(upstream, "GET", path, JsonResponse(models_body(list(model_ids))), default)


def install_openai_error(
    upstream: FakeUpstream,
    status: int,
    message: str = "",
    *,
    method: str = "POST",
    path: str = CHAT_PATH,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
    delay: float = 0.0,
    default: bool = False,
) -> None:
    """An error in OpenAI's shape (``{"error": {...}}``) on ``method path``."""
    response = error_response(status, message, headers=headers, code=code, delay=delay)
    _install(upstream, method, path, response, default)


def use_openai_not_found(upstream: FakeUpstream) -> None:
    """Answer unrouted requests with a 404 in OpenAI's error shape."""
    upstream.not_found = lambda request: error_response(
        404, f"Invalid URL ({request.method} {request.route_path})", code="unknown_url"
    )
