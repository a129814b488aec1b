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

Other servers' shapes of the same format (usage chunks without ``choices``, ``x_groq``,
reasoning fields, typed content parts, SSE comments, errors inside the stream...) are
written with ``envelope`` and ``choice`` and served with ``events_response``::

    events_response(
        b": OPENROUTER PROCESSING\n\n",
        envelope(choices=[choice({"reasoning": "Hmm"})]),
        envelope(choices=[choice({"content": "Hi"}, finish_reason="stop")]),
    )

``strict_roles(response)`` answers like a server whose chat template requires
alternating roles (vLLM, llama.cpp with a Mistral or Llama 2 template): a 400 for a
history that does not alternate. ``CloseDelimitedUpstream`` serves a body without a
length that ends when the server closes the connection.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .server import (
    Break,
    FakeUpstream,
    JsonResponse,
    Pause,
    RecordedRequest,
    Response,
    StreamResponse,
    sse,
)

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


def envelope(
    completion_id: str = "chatcmpl-fake", *, model: str = "gpt-4o-mini", **fields: Any
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` envelope (``id``, ``object``, ``created``, ``model``)
    around ``fields``, taken exactly as given: for the shapes other servers send (no
    ``choices`` key, ``x_groq``, ``prompt_filter_results``, ``timings``...)."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        **fields,
    }


def choice(
    delta: Any, *, finish_reason: str | None = None, index: int = 0, **fields: Any
) -> dict[str, Any]:
    """One streamed choice; ``delta`` is sent as given (a dict, ``{}`` or ``None``)."""
    return {"index": index, "delta": delta, "finish_reason": finish_reason, **fields}


def events_response(
    *events: Mapping[str, Any] | bytes | Pause | Break, done: bool = True, **kwargs: Any
) -> StreamResponse:
    """A stream of ``events``: each dict as one ``data:`` event, bytes as written (SSE
    comments, malformed lines, other event fields), then ``data: [DONE]`` unless
    ``done=False``. ``kwargs`` go to ``StreamResponse`` (``status``, ``content_type``)."""
    items: list[bytes | Pause | Break] = [
        sse(event) if isinstance(event, Mapping) else event for event in events
    ]
    if done:
        items.append(DONE)
    return StreamResponse(items, **kwargs)


ALTERNATION_ERROR = "Conversation roles must alternate user/assistant/user/assistant/..."


def roles_alternate(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a Chat Completions history passes a strict chat template: an optional
    system message first, then user, assistant, user... starting with a user turn."""
    roles = [message.get("role") for message in messages]
    if roles[:1] == ["system"]:
        roles = roles[1:]
    return all(role == ("user" if i % 2 == 0 else "assistant") for i, role in enumerate(roles))


def alternation_error_response() -> JsonResponse:
    """vLLM's 400 for a history its chat template refuses (its error object, top-level)."""
    return JsonResponse(
        {
            "object": "error",
            "message": ALTERNATION_ERROR,
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
        status=400,
    )


def strict_roles(
    response: Response | Callable[[], Response],
) -> Callable[[RecordedRequest], Response]:
    """A route handler that refuses histories whose roles do not alternate (see
    ``roles_alternate``) with ``alternation_error_response`` and answers the others with
    ``response`` (or a fresh one from a callable)."""

    def handle(request: RecordedRequest) -> Response:
        if not roles_alternate(request.json().get("messages") or []):
            return alternation_error_response()
        return response() if callable(response) else response

    return handle


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
    upstream: FakeUpstream,
    method: str,
    path: str,
    response: Response | Callable[[RecordedRequest], Response],
    default: bool,
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
    require_alternating_roles: bool = False,
) -> None:
    """A streamed reply of ``deltas`` on ``POST path``. ``delay`` holds the status line
    back (a slow upstream); ``require_alternating_roles`` answers a history whose roles
    do not alternate with a 400 instead (``strict_roles``); see ``stream_chunks`` for the
    rest."""
    response = stream_response(
        deltas,
        delay=delay,
        model=model,
        usage=usage,
        finish_reason=finish_reason,
        pause=pause,
        break_after=break_after,
    )
    _install(
        upstream,
        "POST",
        path,
        strict_roles(response) if require_alternating_roles else response,
        default,
    )


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


# --- A body that ends when the connection closes ----------------------------------------


class CloseDelimitedUpstream:
    """A loopback HTTP server that answers every request with ``200``, ``content_type``
    and ``body``, without Content-Length or chunked encoding: the body ends when the
    server closes the connection, which HTTP/1.1 allows (RFC 9112, section 6.3) and which
    a proxy that gives up on a slow upstream does. ``FakeUpstream`` always frames its
    bodies, hence this small server::

        with CloseDelimitedUpstream(b"data: ...\n\n") as server:
            ... point the SDK at server.url + "/v1" ...
    """

    def __init__(self, body: bytes, *, content_type: str = "text/event-stream") -> None:
        self.body = body
        self.content_type = content_type
        self.requests: list[bytes] = []  # the raw request heads
        self._socket = socket.socket()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def __enter__(self) -> CloseDelimitedUpstream:
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.05)  # accept() wakes up to notice __exit__
        self._thread = threading.Thread(target=self._serve, name="close-delimited", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _address = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            data = connection.recv(65536)
            if not data:
                return
            received += data
        head, _, body = received.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            data = connection.recv(65536)
            if not data:
                break
            body += data
        self.requests.append(head)
        connection.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: "
            + self.content_type.encode()
            + b"\r\nconnection: close\r\n\r\n"
            + self.body
        )
        connection.shutdown(socket.SHUT_WR)
