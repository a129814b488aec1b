"""Faults through the whole app: the real view, service, provider and SDK against a
loopback fake upstream (``FakeUpstream``), as a person sees them.

``FAULTS`` is the same list of faults for every cloud provider (OpenAI, Anthropic,
Google Gemini, Mistral AI), each in that provider's own wire format: a bad key, a
refused permission, an unknown model, a persistent rate limit with Retry-After, a 500,
an overloaded service, a timeout before the first token, a connection cut halfway,
unreadable stream data (before and after text), an error event inside the stream, an
empty reply and a stream that ends before the model answered. Every fault must end in
an inline ``error`` event with the one plain sentence for its kind (the same for every
provider, naming it; never a host, setting name or upstream text), be stored with its
kind and the operator's detail (shown to staff only), be logged once, keep the user's
message and the text that had streamed, never be sent to the model as context later,
and leave the conversation usable. A stream that ends after text without saying why
is not a fault: the reply is kept as incomplete, cut off.

Stop and disconnect must close the upstream request at once and keep the partial
reply; two tabs must not mix their replies; a locked database must delay a send, or
refuse it cleanly.

The SQLite test database is normally in memory (shared cache), where a lock fails at
once instead of waiting for the busy timeout and concurrent writers can collide; the
app runs on a file in WAL mode. So each test here copies the test database to a file
and points every connection at it (``file_db``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from asgiref.sync import SyncToAsync
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection, connections
from django.test import AsyncClient
from django.urls import reverse

from chat.models import Conversation, Message
from chat.sse import parse_sse as read_sse
from chat.tests.fakes import anthropic_fake, google_fake, mistral_fake, openai_fake
from chat.tests.fakes.server import (
    Break,
    FakeUpstream,
    RecordedRequest,
    Response,
    StreamResponse,
    sse,
)

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = "first question"
SECOND = "second question"
GOOD_REPLY = ("All ", "good.")

# --- the file database ------------------------------------------------------------------


def _close_connections_everywhere() -> None:
    """Close this thread's connections and those of asgiref's thread for sync code
    called from async tests (where the views' ``sync_to_async`` work runs)."""
    connections.close_all()
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture(autouse=True)
def file_db(transactional_db: None, tmp_path: Path) -> Iterator[Path | None]:
    """The test database copied to a file, with the app's own SQLite options (WAL,
    IMMEDIATE transactions, busy timeout). ``None`` on other databases."""
    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        yield None
        return
    settings_dict = connections.settings["default"]  # shared by every thread's connection
    assert settings_dict is connection.settings_dict
    memory_name, options = settings_dict["NAME"], settings_dict["OPTIONS"]
    # Keeps the in-memory database alive while no Django connection points at it.
    keeper = sqlite3.connect(memory_name, uri=True)
    path = tmp_path / "db.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as target:
        keeper.backup(target)
    settings_dict.update(NAME=str(path), OPTIONS=dict(options))
    _close_connections_everywhere()
    try:
        yield path
    finally:
        _close_connections_everywhere()
        settings_dict.update(NAME=memory_name, OPTIONS=options)
        connection.ensure_connection()  # the in-memory database lives while one is open
        keeper.close()


# --- providers on the fake upstream -----------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """How one provider is pointed at the fake, answers, and reads a request."""

    name: str
    label: str  # the provider's name as people see it
    model: str
    base_path: str  # appended to upstream.url for <NAME>_BASE_URL
    chat_path: str
    reply: Callable[[Sequence[str]], Response]  # a streamed answer of these texts
    turns: Callable[[Any], list[tuple[str, str]]]  # request body -> [(role, text)]


def _openai_turns(body: Any) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"]]


def _google_turns(body: Any) -> list[tuple[str, str]]:
    roles = {"user": "user", "model": "assistant"}
    return [
        (roles[c["role"]], "".join(p.get("text", "") for p in c["parts"])) for c in body["contents"]
    ]


UPSTREAMS = {
    "openai": Upstream(
        "openai",
        "OpenAI",
        "gpt-4o-mini",
        "/v1",
        openai_fake.CHAT_PATH,
        openai_fake.stream_response,
        _openai_turns,
    ),
    "anthropic": Upstream(
        "anthropic",
        "Anthropic",
        anthropic_fake.DEFAULT_MODEL,
        "",
        anthropic_fake.MESSAGES_PATH,
        anthropic_fake.stream_response,
        _openai_turns,
    ),
    "google": Upstream(
        "google",
        "Google Gemini",
        "gemini-3.5-flash",
        "",
        google_fake.STREAM_PATH,
        lambda texts: google_fake.text_stream(*texts),
        _google_turns,
    ),
    "mistral": Upstream(
        "mistral",
        "Mistral AI",
        mistral_fake.DEFAULT_MODEL,
        "",
        mistral_fake.CHAT_PATH,
        mistral_fake.chat_stream,
        _openai_turns,
    ),
}


@pytest.fixture
def app(settings: Any, upstream: FakeUpstream) -> FakeUpstream:
    """Every cloud provider configured against ``upstream``: no retries and a generous
    timeout unless a test says otherwise, no per-user rate limit."""
    for spec in UPSTREAMS.values():
        prefix = spec.name.upper()
        setattr(settings, f"{prefix}_API_KEY", f"test-key-{spec.name}-faults")
        setattr(settings, f"{prefix}_BASE_URL", upstream.url + spec.base_path)
        setattr(settings, f"{prefix}_TIMEOUT", 10.0)
    settings.LLM_MAX_RETRIES = 0
    settings.CHAT_RATE_LIMIT_MESSAGES = 0
    cache.clear()
    return upstream


@pytest.fixture
def user() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
async def client(user: User) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


# --- talking to the app -----------------------------------------------------------------


def parse_sse(body: bytes) -> list[tuple[str, Any]]:
    """(event name, data) of a whole SSE body, read by the project's one reader."""
    return [(event.event, event.data) for event in read_sse(body)]


@dataclass
class Outcome:
    """One reply request as the browser saw it."""

    status_code: int
    events: list[tuple[str, Any]] = field(default_factory=list)
    json: Any = None
    body: bytes = b""  # the whole response, as sent

    @property
    def last(self) -> tuple[str, Any]:
        return self.events[-1]

    @property
    def text(self) -> str:
        return "".join(data["text"] for kind, data in self.events if kind == "delta")

    @property
    def reply_id(self) -> int:
        return self.events[0][1]["message_id"]


async def send(client: AsyncClient, conversation: Conversation, content: str) -> Outcome:
    response = await client.post(
        reverse("chat:reply", args=[conversation.pk]), {"content": content}
    )
    if not response.streaming:
        return Outcome(
            response.status_code, json=json.loads(response.content), body=response.content
        )
    body = b"".join([chunk async for chunk in response.streaming_content])
    return Outcome(response.status_code, parse_sse(body), body=body)


async def make_conversation(user: User, provider: str) -> Conversation:
    return await Conversation.objects.acreate(
        owner=user, provider=provider, model=UPSTREAMS[provider].model
    )


async def messages_of(conversation: Conversation) -> list[Message]:
    return [m async for m in conversation.messages.order_by("created_at", "id")]


# --- the faults, in each provider's wire format -----------------------------------------

NOT_JSON = b"data: {this is not json\n\n"
LATE = 1.5  # seconds the upstream waits before answering a timed-out request
SHORT_TIMEOUT = 0.3  # the provider's request timeout for those
RETRY_AFTER = 30  # seconds a rate-limited upstream asks for (past the app's retry wait)


def _openai_role_chunk() -> bytes:
    """OpenAI's first chunk of a reply: the role and empty content."""
    return sse(openai_fake.chunk("chatcmpl-x", delta={"role": "assistant", "content": ""}))


def _openai_text_chunk(text: str) -> bytes:
    """One chunk of reply text, in OpenAI's shape."""
    return sse(openai_fake.chunk("chatcmpl-x", delta={"content": text}))


def _openai_error_event_after_text() -> StreamResponse:
    """OpenAI's error inside a 200 stream (``{"error": {...}}``), after some text."""
    error = openai_fake.error_body(
        500, "The server had an error while processing your request. Sorry about that!"
    )
    return openai_fake.events_response(
        openai_fake.envelope(choices=[openai_fake.choice({"role": "assistant", "content": ""})]),
        openai_fake.envelope(choices=[openai_fake.choice({"content": "Hi "})]),
        error,
        done=False,
    )


def _anthropic_until_text(texts: Sequence[str] = ("Hi ",)) -> list[Any]:
    """An Anthropic stream up to (and with) its last text delta: nothing after it."""
    events = anthropic_fake.stream_events(texts)
    last_text = max(
        i for i, e in enumerate(events) if isinstance(e, bytes) and b'"text_delta"' in e
    )
    return events[: last_text + 1]


def _anthropic_opening() -> list[Any]:
    """message_start and ping: the stream before any content block."""
    return [
        e
        for e in anthropic_fake.stream_events(())
        if isinstance(e, bytes) and (b"message_start" in e or b"event: ping" in e)
    ]


def _google_chunk(text: str | None = None, **kwargs: Any) -> bytes:
    """One Gemini stream event (see ``google_fake.chunk`` for ``kwargs``)."""
    return google_fake.event(google_fake.chunk(text, **kwargs))


def _google_late() -> StreamResponse:
    """A Gemini reply whose status line comes ``LATE`` seconds late."""
    return dataclasses.replace(google_fake.text_stream("late"), delay=LATE)


def _mistral_role_chunk() -> bytes:
    """Mistral's first chunk of a reply: the role and empty content."""
    return sse(mistral_fake.chunk("", role="assistant"))


@dataclass(frozen=True)
class Fault:
    """One fault of one provider, and what the app must make of it."""

    id: str
    provider: str
    response: Callable[[], Response]  # the failing answer, built per request
    kind: str  # the stored ``error_kind``
    detail: str | None  # a piece of the stored ``error_detail`` (None: no detail)
    partial: str = ""  # the text that streamed before the failure
    timeout: float = 10.0  # the provider's request timeout for the failing send
    retry_after: int | None = None  # seconds the person is told to wait


# What a person reads for each kind of fault: the same for every provider.
PLAIN_SENTENCES = {
    "authentication": "{label} refused this server's credentials. Ask an administrator to check "
    "them.",
    "permission": "{label} does not allow this server to use {model}. Choose another model.",
    "model_not_found": "{label} does not have the model {model}. Choose another model.",
    "rate_limited": "{label} is receiving too many requests. Try again in {seconds} seconds.",
    "timeout": "{label} took too long to answer. Try again.",
    "unavailable": "{label} is unavailable or the connection to it was lost. Try again in a "
    "moment.",
    "empty": "{label} returned an empty reply.",
}


def plain_sentence(fault: Fault) -> str:
    """The sentence a person must read for ``fault`` (``PLAIN_SENTENCES`` filled in)."""
    spec = UPSTREAMS[fault.provider]
    return PLAIN_SENTENCES[fault.kind].format(
        label=spec.label, model=spec.model, seconds=fault.retry_after
    )


OPENAI_FAULTS = [
    Fault(
        "openai-401-bad-key",
        "openai",
        lambda: openai_fake.error_response(401, "Incorrect API key provided: test-k***ults."),
        "authentication",
        "OpenAI: invalid API key (check OPENAI_API_KEY)",
    ),
    Fault(
        "openai-403-forbidden",
        "openai",
        lambda: openai_fake.error_response(403, "Country, region, or territory not supported"),
        "permission",
        "OpenAI: Country, region, or territory not supported",
    ),
    Fault(
        "openai-404-unknown-model",
        "openai",
        lambda: openai_fake.error_response(
            404, "The model `gpt-4o-mini` does not exist or you do not have access to it."
        ),
        "model_not_found",
        "OpenAI: The model `gpt-4o-mini` does not exist",
    ),
    Fault(
        "openai-429-persistent",
        "openai",
        lambda: openai_fake.error_response(
            429,
            "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
            headers={"retry-after": str(RETRY_AFTER)},
        ),
        "rate_limited",
        "OpenAI: Rate limit reached for gpt-4o-mini",
        retry_after=RETRY_AFTER,
    ),
    Fault(
        "openai-500",
        "openai",
        lambda: openai_fake.error_response(500, "The server had an error processing your request."),
        "unavailable",
        "OpenAI: The server had an error processing your request.",
    ),
    Fault(
        "openai-503-overloaded",
        "openai",
        lambda: openai_fake.error_response(503, "The engine is currently overloaded."),
        "unavailable",
        "OpenAI: The engine is currently overloaded.",
    ),
    Fault(
        "openai-timeout-before-first-token",
        "openai",
        lambda: openai_fake.stream_response(["late"], delay=LATE),
        "timeout",
        "OpenAI: the request timed out (no answer from 127.0.0.1:",  # "...:<port> within 0.3 s)"
        timeout=SHORT_TIMEOUT,
    ),
    Fault(
        "openai-cut-halfway",
        "openai",
        lambda: openai_fake.stream_response(["Hel", "lo ", "wor"], break_after=2),
        "unavailable",
        "OpenAI: the connection to 127.0.0.1:",  # "...:<port> was lost"
        partial="Hello ",
    ),
    Fault(
        "openai-malformed-before-text",
        "openai",
        lambda: StreamResponse([_openai_role_chunk(), NOT_JSON]),
        "unavailable",
        "OpenAI: the reply could not be read",
    ),
    Fault(
        "openai-malformed-after-text",
        "openai",
        lambda: StreamResponse([_openai_role_chunk(), _openai_text_chunk("Hi "), NOT_JSON]),
        "unavailable",
        "OpenAI: the reply could not be read",
        partial="Hi ",
    ),
    Fault(
        "openai-error-event-in-stream",
        "openai",
        _openai_error_event_after_text,
        "unavailable",
        "OpenAI: The server had an error while processing your request.",
        partial="Hi ",
    ),
    Fault(
        "openai-empty-reply",
        "openai",
        lambda: openai_fake.stream_response([]),
        "empty",
        None,
    ),
    Fault(
        "openai-ended-before-answering",
        "openai",
        lambda: openai_fake.stream_response([], finish_reason=None, usage=None, done=False),
        "unavailable",
        "OpenAI: the reply ended before the model answered",
    ),
]

ANTHROPIC_FAULTS = [
    Fault(
        "anthropic-401-bad-key",
        "anthropic",
        lambda: anthropic_fake.error_response(401),
        "authentication",
        "Anthropic: invalid API key (check ANTHROPIC_API_KEY)",
    ),
    Fault(
        "anthropic-403-forbidden",
        "anthropic",
        lambda: anthropic_fake.error_response(403),
        "permission",
        "Anthropic: Your API key does not have permission to use the specified resource.",
    ),
    Fault(
        "anthropic-404-unknown-model",
        "anthropic",
        lambda: anthropic_fake.model_not_found(anthropic_fake.DEFAULT_MODEL),
        "model_not_found",
        f"Anthropic: unknown model '{anthropic_fake.DEFAULT_MODEL}'",
    ),
    Fault(
        "anthropic-429-persistent",
        "anthropic",
        lambda: anthropic_fake.error_response(429, headers={"retry-after": str(RETRY_AFTER)}),
        "rate_limited",
        "Anthropic: Number of request tokens has exceeded your per-minute rate limit.",
        retry_after=RETRY_AFTER,
    ),
    Fault(
        "anthropic-500",
        "anthropic",
        lambda: anthropic_fake.error_response(500),
        "unavailable",
        "Anthropic: Internal server error",
    ),
    Fault(
        "anthropic-529-overloaded",
        "anthropic",
        lambda: anthropic_fake.error_response(529),
        "unavailable",
        "Anthropic: Overloaded",
    ),
    Fault(
        "anthropic-timeout-before-first-token",
        "anthropic",
        lambda: anthropic_fake.stream_response(["late"], delay=LATE),
        "timeout",
        "Anthropic: the request timed out",
        timeout=SHORT_TIMEOUT,
    ),
    Fault(
        "anthropic-cut-halfway",
        "anthropic",
        lambda: anthropic_fake.broken_stream(["Hello", " wor"]),
        "unavailable",
        "Anthropic: the connection to 127.0.0.1:",  # "...:<port> was lost"
        partial="Hello wor",
    ),
    Fault(
        "anthropic-malformed-before-text",
        "anthropic",
        lambda: StreamResponse([*_anthropic_opening(), b"event: content_block_start\n" + NOT_JSON]),
        "unavailable",
        "Anthropic: the service sent a malformed reply",
    ),
    Fault(
        "anthropic-malformed-after-text",
        "anthropic",
        lambda: StreamResponse(
            [*_anthropic_until_text(), b"event: content_block_delta\n" + NOT_JSON]
        ),
        "unavailable",
        "Anthropic: the service sent a malformed reply",
        partial="Hi ",
    ),
    Fault(
        "anthropic-error-event-in-stream",
        "anthropic",
        lambda: StreamResponse([*_anthropic_until_text(), anthropic_fake.error_event()]),
        "unavailable",
        "Anthropic: Overloaded",
        partial="Hi ",
    ),
    Fault(
        "anthropic-empty-reply",
        "anthropic",
        lambda: anthropic_fake.stream_response([]),
        "empty",
        None,
    ),
    Fault(
        "anthropic-ended-before-answering",
        "anthropic",
        lambda: StreamResponse(_anthropic_opening()),
        "unavailable",
        "Anthropic: the reply ended before the model answered",
    ),
]

GOOGLE_FAULTS = [
    Fault(
        # Gemini answers a bad key with a 400 whose reason is API_KEY_INVALID.
        "google-400-bad-key",
        "google",
        google_fake.invalid_key,
        "authentication",
        "Google Gemini: invalid API key (check GOOGLE_API_KEY)",
    ),
    Fault(
        "google-403-forbidden",
        "google",
        lambda: google_fake.error_response(
            403, "Generative Language API has not been used in project 1234 or it is disabled."
        ),
        "permission",
        "Google Gemini: Generative Language API has not been used in project 1234",
    ),
    Fault(
        "google-404-unknown-model",
        "google",
        lambda: google_fake.model_not_found("gemini-3.5-flash"),
        "model_not_found",
        "Google Gemini: models/gemini-3.5-flash is not found",
    ),
    Fault(
        # Gemini says how long to wait in a RetryInfo detail, not a header.
        "google-429-persistent",
        "google",
        lambda: google_fake.rate_limited(retry_after=None, retry_delay=f"{RETRY_AFTER}s"),
        "rate_limited",
        "Google Gemini: You exceeded your current quota",
        retry_after=RETRY_AFTER,
    ),
    Fault(
        "google-500",
        "google",
        lambda: google_fake.error_response(500, "An internal error has occurred."),
        "unavailable",
        "Google Gemini: An internal error has occurred.",
    ),
    Fault(
        "google-503-overloaded",
        "google",
        lambda: google_fake.error_response(503, "The model is overloaded. Please try again later."),
        "unavailable",
        "Google Gemini: The model is overloaded.",
    ),
    Fault(
        "google-timeout-before-first-token",
        "google",
        _google_late,
        "timeout",
        "Google Gemini: the request timed out",
        timeout=SHORT_TIMEOUT,
    ),
    Fault(
        "google-cut-halfway",
        "google",
        lambda: google_fake.text_stream("Hello", " wor", end=Break()),
        "unavailable",
        "Google Gemini: the connection to 127.0.0.1:",  # "...:<port> was lost"
        partial="Hello wor",
    ),
    Fault(
        "google-malformed-before-text",
        "google",
        lambda: StreamResponse([NOT_JSON]),
        "unavailable",
        "Google Gemini: the service sent a reply that could not be read",
    ),
    Fault(
        "google-malformed-after-text",
        "google",
        lambda: StreamResponse([_google_chunk("Hi "), NOT_JSON]),
        "unavailable",
        "Google Gemini: the service sent a reply that could not be read",
        partial="Hi ",
    ),
    Fault(
        # The error object Gemini sends as an event when it fails mid-stream.
        "google-error-event-in-stream",
        "google",
        lambda: StreamResponse(
            [
                _google_chunk("Hi "),
                google_fake.event(
                    google_fake.error_body(503, "The model is overloaded. Please try again later.")
                ),
            ]
        ),
        "unavailable",
        "Google Gemini: The model is overloaded.",
        partial="Hi ",
    ),
    Fault(
        "google-empty-reply",
        "google",
        google_fake.text_stream,
        "empty",
        None,
    ),
    Fault(
        "google-ended-before-answering",
        "google",
        lambda: StreamResponse([_google_chunk(usage=google_fake.usage_metadata(7, 0))]),
        "unavailable",
        "Google Gemini: the reply ended before the model answered",
    ),
]

MISTRAL_FAULTS = [
    Fault(
        "mistral-401-bad-key",
        "mistral",
        lambda: mistral_fake.error_response(401),
        "authentication",
        "Mistral AI: invalid API key (check MISTRAL_API_KEY)",
    ),
    Fault(
        "mistral-403-forbidden",
        "mistral",
        lambda: mistral_fake.error_response(403, "You are not allowed to use this model."),
        "permission",
        "Mistral AI: You are not allowed to use this model.",
    ),
    Fault(
        # Mistral answers an unknown model id with a 400 of type invalid_model.
        "mistral-400-unknown-model",
        "mistral",
        lambda: mistral_fake.invalid_model_response(mistral_fake.DEFAULT_MODEL),
        "model_not_found",
        f"Mistral AI: Invalid model: {mistral_fake.DEFAULT_MODEL}",
    ),
    Fault(
        "mistral-429-persistent",
        "mistral",
        lambda: mistral_fake.error_response(
            429, "Requests rate limit exceeded", headers={"Retry-After": str(RETRY_AFTER)}
        ),
        "rate_limited",
        "Mistral AI: Requests rate limit exceeded",
        retry_after=RETRY_AFTER,
    ),
    Fault(
        "mistral-500",
        "mistral",
        lambda: mistral_fake.error_response(500, "Internal server error"),
        "unavailable",
        "Mistral AI: Internal server error",
    ),
    Fault(
        "mistral-503-overloaded",
        "mistral",
        lambda: mistral_fake.error_response(503, "Service tier capacity exceeded for this model."),
        "unavailable",
        "Mistral AI: Service tier capacity exceeded for this model.",
    ),
    Fault(
        "mistral-timeout-before-first-token",
        "mistral",
        lambda: mistral_fake.chat_stream(["late"], delay=LATE),
        "timeout",
        "Mistral AI: the request timed out",
        timeout=SHORT_TIMEOUT,
    ),
    Fault(
        "mistral-cut-halfway",
        "mistral",
        lambda: mistral_fake.broken_stream(["Hello", " wor"]),
        "unavailable",
        "Mistral AI: the connection to 127.0.0.1:",  # "...:<port> was lost"
        partial="Hello wor",
    ),
    Fault(
        "mistral-malformed-before-text",
        "mistral",
        lambda: mistral_fake.raw_stream([_mistral_role_chunk(), NOT_JSON]),
        "unavailable",
        "Mistral AI: the reply was malformed",
    ),
    Fault(
        "mistral-malformed-after-text",
        "mistral",
        lambda: mistral_fake.raw_stream(
            [_mistral_role_chunk(), sse(mistral_fake.chunk("Hi ")), NOT_JSON]
        ),
        "unavailable",
        "Mistral AI: the reply was malformed",
        partial="Hi ",
    ),
    Fault(
        # An error object in place of a chunk, in Mistral's error shape.
        "mistral-error-event-in-stream",
        "mistral",
        lambda: mistral_fake.raw_stream(
            [
                _mistral_role_chunk(),
                sse(mistral_fake.chunk("Hi ")),
                sse(mistral_fake.error_body(503, "Service unavailable.", error_type="api_error")),
            ]
        ),
        "unavailable",
        "Mistral AI: Service unavailable.",
        partial="Hi ",
    ),
    Fault(
        "mistral-empty-reply",
        "mistral",
        lambda: mistral_fake.chat_stream([]),
        "empty",
        None,
    ),
    Fault(
        "mistral-ended-before-answering",
        "mistral",
        lambda: mistral_fake.raw_stream([_mistral_role_chunk()]),
        "unavailable",
        "Mistral AI: the reply ended before the model answered",
    ),
]

FAULTS = OPENAI_FAULTS + ANTHROPIC_FAULTS + GOOGLE_FAULTS + MISTRAL_FAULTS


@dataclass
class Failed:
    """A conversation whose first send met ``fault``."""

    fault: Fault
    spec: Upstream
    conversation: Conversation = field(repr=False)
    outcome: Outcome
    port: int  # the fake upstream's, which people must never see
    logged: list[logging.LogRecord] = field(default_factory=list, repr=False)


async def meet(
    fault: Fault, app: FakeUpstream, settings: Any, user: User, client: AsyncClient
) -> Failed:
    """Send ``FIRST`` in a new conversation of ``user`` whose upstream answers ``fault``."""
    spec = UPSTREAMS[fault.provider]
    timeout_setting = f"{spec.name.upper()}_TIMEOUT"
    app.add("POST", spec.chat_path, fault.response())
    conversation = await make_conversation(user, fault.provider)
    setattr(settings, timeout_setting, fault.timeout)
    outcome = await send(client, conversation, FIRST)
    setattr(settings, timeout_setting, 10.0)
    return Failed(fault, spec, conversation, outcome, app.port)


@pytest.fixture(params=FAULTS, ids=[f.id for f in FAULTS])
async def failed(
    request: pytest.FixtureRequest,
    app: FakeUpstream,
    settings: Any,
    user: User,
    client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> Failed:
    caplog.set_level(logging.INFO, logger="chat.services")
    result = await meet(request.param, app, settings, user, client)
    result.logged = [r for r in caplog.records if r.name == "chat.services"]
    return result


async def test_fault_ends_in_an_inline_error_with_the_plain_sentence_for_its_kind(
    failed: Failed,
) -> None:
    kind, data = failed.outcome.last
    assert (failed.outcome.status_code, kind) == (200, "error")
    assert data["message"] == plain_sentence(failed.fault)


async def test_fault_is_stored_with_its_kind_and_the_detail_for_staff_and_the_log(
    failed: Failed,
) -> None:
    reply = (await messages_of(failed.conversation))[1]
    detail = failed.fault.detail
    assert (reply.status, reply.error_kind) == ("error", failed.fault.kind)
    if detail is None:  # an empty reply: its finish reason says it all
        assert reply.error_detail == ""
    else:
        assert detail in reply.error_detail


async def test_fault_shows_a_person_no_host_setting_or_detail(failed: Failed) -> None:
    """Nothing the person receives names the upstream's address or a setting, and the
    error event carries neither the detail nor the upstream's own words."""
    body = failed.outcome.body.decode()
    pieces = ("127.0.0.1", f":{failed.port}", "_API_KEY", "_BASE_URL")
    error = failed.outcome.last[1]
    words = failed.fault.detail.split(": ", 1)[-1] if failed.fault.detail else None
    assert (
        [piece for piece in pieces if piece in body],
        "detail" in error,
        words is not None and words in error["message"],
    ) == ([], False, False)


async def test_fault_keeps_the_user_message(failed: Failed) -> None:
    first = (await messages_of(failed.conversation))[0]
    assert (first.role, first.content) == ("user", FIRST)


async def test_fault_is_recorded_on_the_reply_with_the_text_that_streamed(
    failed: Failed,
) -> None:
    reply = (await messages_of(failed.conversation))[1]
    assert (reply.status, reply.content, reply.error) == (
        "error",
        failed.fault.partial,
        failed.outcome.last[1]["message"],
    )


@pytest.mark.parametrize(
    "failed", [f for f in FAULTS if f.partial], ids=lambda f: f.id, indirect=True
)
async def test_fault_after_text_shows_the_partial_text(failed: Failed) -> None:
    assert failed.outcome.text == failed.fault.partial
    assert failed.outcome.last[1]["partial_html"]


async def test_fault_is_logged_once_with_provider_model_kind_and_conversation(
    failed: Failed,
) -> None:
    reply_id = failed.outcome.reply_id
    records = [r for r in failed.logged if f"reply {reply_id} failed" in r.getMessage()]
    assert [r.levelname for r in records] == ["WARNING"]
    said = re.search(
        r"provider=(\S+) model=(\S+) kind=([^\s:]+)\S* conversation=(\d+)", records[0].getMessage()
    )
    assert said is not None
    # (An empty reply's kind is logged as "empty:<finish reason>".)
    assert said.groups() == (
        failed.spec.name,
        failed.spec.model,
        failed.fault.kind,
        str(failed.conversation.pk),
    )


DETAILED_FAULTS = [f for f in FAULTS if f.detail is not None]


@pytest.mark.parametrize("fault", DETAILED_FAULTS, ids=[f.id for f in DETAILED_FAULTS])
async def test_staff_see_the_detail_of_a_fault_in_the_error_event(
    fault: Fault, app: FakeUpstream, settings: Any
) -> None:
    admin = await User.objects.acreate_user("boss", password="pw-boss-123", is_staff=True)
    staff = AsyncClient()
    await staff.aforce_login(admin)
    result = await meet(fault, app, settings, admin, staff)
    reply = (await messages_of(result.conversation))[1]
    assert fault.detail in result.outcome.last[1].get("detail", "")
    assert result.outcome.last[1]["detail"] == reply.error_detail


async def test_conversation_stays_usable_after_a_fault(
    failed: Failed, app: FakeUpstream, client: AsyncClient
) -> None:
    app.add("POST", failed.spec.chat_path, failed.spec.reply(GOOD_REPLY))
    again = await send(client, failed.conversation, SECOND)
    assert (again.last[0], again.last[1]["status"], again.text) == (
        "done",
        "complete",
        "".join(GOOD_REPLY),
    )


async def test_failed_reply_is_not_sent_as_context_next_time(
    failed: Failed, app: FakeUpstream, client: AsyncClient
) -> None:
    """Neither the failed reply nor the question it failed on reach the model again:
    the person moved on, and two user turns in a row are refused by some APIs."""
    app.add("POST", failed.spec.chat_path, failed.spec.reply(GOOD_REPLY))
    await send(client, failed.conversation, SECOND)
    assert failed.spec.turns(app.requests[-1].json()) == [("user", SECOND)]


# --- a stream that ends after text without saying why: kept, cut off --------------------

CUT_TEXTS = ("Step 1. Open the", " settings and")

# Each provider's stream of ``CUT_TEXTS`` that ends cleanly with no finish reason (a
# proxy timing out): no finish chunk, no message_delta/message_stop, no finishReason,
# no [DONE].
ENDS_WITHOUT_A_REASON: dict[str, Callable[[], Response]] = {
    "openai": lambda: openai_fake.stream_response(
        CUT_TEXTS, finish_reason=None, usage=None, done=False
    ),
    "anthropic": lambda: StreamResponse(_anthropic_until_text(CUT_TEXTS)),
    "google": lambda: StreamResponse([_google_chunk(text) for text in CUT_TEXTS]),
    "mistral": lambda: mistral_fake.raw_stream(
        [_mistral_role_chunk(), *(sse(mistral_fake.chunk(text)) for text in CUT_TEXTS)]
    ),
}


@dataclass
class CutOff:
    """A conversation whose first reply ended after text without a finish reason."""

    conversation: Conversation = field(repr=False)
    outcome: Outcome
    spec: Upstream


@pytest.fixture(params=list(ENDS_WITHOUT_A_REASON))
async def cut_off(
    request: pytest.FixtureRequest, app: FakeUpstream, user: User, client: AsyncClient
) -> CutOff:
    spec = UPSTREAMS[request.param]
    app.add("POST", spec.chat_path, ENDS_WITHOUT_A_REASON[spec.name]())
    conversation = await make_conversation(user, spec.name)
    return CutOff(conversation, await send(client, conversation, FIRST), spec)


async def test_stream_ending_without_a_reason_ends_as_incomplete_with_a_notice(
    cut_off: CutOff,
) -> None:
    kind, data = cut_off.outcome.last
    assert (kind, data["status"], data["finish_reason"], cut_off.outcome.text) == (
        "done",
        "incomplete",
        "cut_off",
        "".join(CUT_TEXTS),
    )
    assert data["notice"] and data["can_continue"]


async def test_stream_ending_without_a_reason_keeps_its_text_as_cut_off_not_as_error(
    cut_off: CutOff,
) -> None:
    reply = (await messages_of(cut_off.conversation))[1]
    assert (reply.status, reply.finish_reason, reply.content, reply.error, reply.error_kind) == (
        "incomplete",
        "cut_off",
        "".join(CUT_TEXTS),
        "",
        "",
    )


# --- retries before the first token -----------------------------------------------------


@pytest.mark.parametrize(
    ("first_answer", "timeout"),
    [
        pytest.param(
            lambda: openai_fake.error_response(429, "slow down", headers={"retry-after": "0"}),
            10.0,
            id="429-retry-after",
        ),
        pytest.param(lambda: openai_fake.error_response(500, "oops"), 10.0, id="500"),
        pytest.param(lambda: openai_fake.error_response(503, "overloaded"), 10.0, id="503"),
        pytest.param(lambda: openai_fake.stream_response(["late"], delay=1.5), 0.5, id="timeout"),
    ],
)
async def test_transient_fault_before_the_first_token_is_retried_and_the_reply_arrives_once(
    app: FakeUpstream,
    settings: Any,
    user: User,
    client: AsyncClient,
    first_answer: Callable[[], Response],
    timeout: float,
) -> None:
    settings.LLM_MAX_RETRIES = 1
    settings.OPENAI_TIMEOUT = timeout
    app.add("POST", openai_fake.CHAT_PATH, first_answer(), openai_fake.stream_response(GOOD_REPLY))
    conversation = await make_conversation(user, "openai")
    outcome = await send(client, conversation, FIRST)
    assert outcome.events[0][0] == "start"
    assert outcome.events[-1][0] == "done"
    assert outcome.text == "".join(GOOD_REPLY)


# Each provider's 429 asking to retry at once.
RATE_LIMITED_NOW: dict[str, Callable[[], Response]] = {
    "openai": lambda: openai_fake.error_response(
        429, "Rate limit reached", headers={"retry-after": "0"}
    ),
    "anthropic": lambda: anthropic_fake.error_response(429, headers={"retry-after": "0"}),
    "google": lambda: google_fake.rate_limited(retry_after=None, retry_delay="0s"),
    "mistral": lambda: mistral_fake.error_response(
        429, "Requests rate limit exceeded", headers={"Retry-After": "0"}
    ),
}


@pytest.mark.parametrize("provider", list(RATE_LIMITED_NOW))
async def test_persistent_rate_limit_is_retried_then_reported(
    app: FakeUpstream, settings: Any, user: User, client: AsyncClient, provider: str
) -> None:
    settings.LLM_MAX_RETRIES = 1
    spec = UPSTREAMS[provider]
    app.set_default("POST", spec.chat_path, lambda _request: RATE_LIMITED_NOW[provider]())
    conversation = await make_conversation(user, provider)
    outcome = await send(client, conversation, FIRST)
    assert outcome.last == (
        "error",
        {
            "message": f"{spec.label} is receiving too many requests. Try again in a minute.",
            "message_id": outcome.reply_id,
            "partial_html": "",
            "status": "error",
            "can_continue": False,
        },
    )
    assert len(app.requests) == 2


async def test_retry_waits_as_long_as_retry_after_says(
    app: FakeUpstream, settings: Any, user: User, client: AsyncClient
) -> None:
    settings.LLM_MAX_RETRIES = 1
    app.add(
        "POST",
        openai_fake.CHAT_PATH,
        openai_fake.error_response(429, "slow down", headers={"retry-after": "1"}),
        openai_fake.stream_response(GOOD_REPLY),
    )
    conversation = await make_conversation(user, "openai")
    await send(client, conversation, FIRST)
    first, second = app.requests
    assert second.received_at - first.received_at >= 0.95


async def test_rate_limit_with_a_long_retry_after_is_reported_without_waiting(
    app: FakeUpstream, settings: Any, user: User, client: AsyncClient
) -> None:
    settings.LLM_MAX_RETRIES = 2
    app.set_default(
        "POST",
        openai_fake.CHAT_PATH,
        openai_fake.error_response(429, "Rate limit reached", headers={"retry-after": "600"}),
    )
    conversation = await make_conversation(user, "openai")
    started = time.monotonic()
    outcome = await send(client, conversation, FIRST)
    assert (outcome.last[0], len(app.requests)) == ("error", 1)
    assert time.monotonic() - started < 5


async def test_stream_cut_after_text_is_not_retried(
    app: FakeUpstream, settings: Any, user: User, client: AsyncClient
) -> None:
    """A retry would send the text twice."""
    settings.LLM_MAX_RETRIES = 2
    app.set_default(
        "POST",
        openai_fake.CHAT_PATH,
        openai_fake.stream_response(["Hel", "lo ", "wor"], break_after=2),
    )
    conversation = await make_conversation(user, "openai")
    outcome = await send(client, conversation, FIRST)
    assert (outcome.text, len(app.requests)) == ("Hello ", 1)


# --- Stop and disconnect ----------------------------------------------------------------

SLOW_WORDS = [f"w{i} " for i in range(30)]
SLOW_PAUSE = 0.1


@dataclass
class Interrupted:
    """A slow reply that the user stopped (or walked away from) after two deltas."""

    reply_id: int
    seen_text: str  # what reached the browser
    events: list[tuple[str, Any]]
    upstream_request: RecordedRequest


@pytest.fixture
async def stopped(app: FakeUpstream, user: User, client: AsyncClient) -> Interrupted:
    """The Stop button: POST chat:stop while the reply streams."""
    app.add(
        "POST", openai_fake.CHAT_PATH, openai_fake.stream_response(SLOW_WORDS, pause=SLOW_PAUSE)
    )
    conversation = await make_conversation(user, "openai")
    response = await client.post(reverse("chat:reply", args=[conversation.pk]), {"content": FIRST})
    stream = response.streaming_content
    received = b""
    while received.count(b"event: delta") < 2:
        received += await anext(stream)
    reply_id = parse_sse(received)[0][1]["message_id"]
    answer = await client.post(reverse("chat:stop", args=[reply_id]))
    assert answer.json() == {"stopping": True}
    rest = b"".join([chunk async for chunk in stream])
    events = parse_sse(received + rest)
    seen = "".join(data["text"] for kind, data in events if kind == "delta")
    return Interrupted(reply_id, seen, events, app.requests[-1])


async def test_stop_ends_the_stream_with_a_stopped_done_event(stopped: Interrupted) -> None:
    kind, data = stopped.events[-1]
    assert (kind, data["status"]) == ("done", "stopped")


async def test_stop_closes_the_upstream_request_within_a_second(stopped: Interrupted) -> None:
    assert await asyncio.to_thread(stopped.upstream_request.client_closed.wait, 1.0)


async def test_stop_keeps_the_partial_reply(stopped: Interrupted) -> None:
    reply = await Message.objects.aget(pk=stopped.reply_id)
    assert (reply.status, reply.content) == ("stopped", stopped.seen_text)
    assert reply.content.startswith("w0 w1 ")


class AsgiExchange:
    """One POST through the project's real ASGI application, with a browser that goes
    away after ``DELTAS_BEFORE_LEAVING`` deltas: ``disconnect()`` delivers
    ``http.disconnect`` as an ASGI server does when the socket closes, and Django
    cancels the task sending the response. With ``stall`` the server is stuck writing
    (a slow network) when that happens, so the cancellation lands outside the view's
    generator.

    (Django's test client cannot show this: closing its ``streaming_content`` leaves
    the view's generator referenced by the response, and nothing reaches it.)"""

    DELTAS_BEFORE_LEAVING = 2

    def __init__(
        self, path: str, data: dict[str, str], session: str, *, stall: bool = False
    ) -> None:
        from chat_ai.asgi import application

        token = "csrf0123456789abcdefghijklmnopqr"  # 32 characters, as Django expects
        self.body = urlencode(data).encode()
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(self.body)).encode()),
                (b"cookie", f"sessionid={session}; csrftoken={token}".encode()),
                (b"x-csrftoken", token.encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        self.application = application
        self.stall = stall
        self.sent: list[dict[str, Any]] = []
        self.deltas = 0
        self.got_deltas = asyncio.Event()
        self._gone = asyncio.Event()
        self._body_read = False

    @property
    def body_bytes(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent)

    async def receive(self) -> dict[str, Any]:
        if not self._body_read:
            self._body_read = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.deltas += message.get("body", b"").count(b"event: delta")
        if self.deltas >= self.DELTAS_BEFORE_LEAVING:
            self.got_deltas.set()
            if self.stall:
                await asyncio.Event().wait()  # the socket is not writable any more

    def disconnect(self) -> None:
        self._gone.set()

    async def run(self) -> None:
        await self.application(self.scope, self.receive, self.send)


@pytest.fixture(params=["waiting-for-the-model", "writing-a-chunk"])
async def walked_away(
    request: pytest.FixtureRequest, app: FakeUpstream, user: User, client: AsyncClient
) -> Interrupted:
    """The browser goes away after two deltas, while the server waits for the model's
    next chunk or while it is stuck writing one."""
    app.add(
        "POST", openai_fake.CHAT_PATH, openai_fake.stream_response(SLOW_WORDS, pause=SLOW_PAUSE)
    )
    conversation = await make_conversation(user, "openai")
    exchange = AsgiExchange(
        reverse("chat:reply", args=[conversation.pk]),
        {"content": FIRST},
        client.cookies["sessionid"].value,
        stall=request.param == "writing-a-chunk",
    )
    handler = asyncio.create_task(exchange.run())
    await asyncio.wait_for(exchange.got_deltas.wait(), 10)
    exchange.disconnect()
    await asyncio.wait_for(handler, 10)
    events = parse_sse(exchange.body_bytes)
    seen = "".join(data["text"] for kind, data in events if kind == "delta")
    return Interrupted(events[0][1]["message_id"], seen, events, app.requests[-1])


async def test_a_disconnect_does_not_stop_the_reply(walked_away: Interrupted) -> None:
    """The reply belongs to the server: the browser going away (reload, closed tab,
    lost connection), even while the server is stuck writing to it, leaves the model
    answering, and the whole reply is saved."""

    async def saved() -> Message:
        while True:
            reply = await Message.objects.aget(pk=walked_away.reply_id)
            if reply.status != "streaming":
                return reply
            await asyncio.sleep(0.02)

    reply = await asyncio.wait_for(saved(), 10.0)
    assert (reply.status, reply.content) == ("complete", "".join(SLOW_WORDS))
    assert reply.content.startswith(walked_away.seen_text)


# --- two tabs ---------------------------------------------------------------------------

TAB_ANSWERS = {
    "question from tab A": [f"A{i} " for i in range(8)],
    "question from tab B": [f"B{i} " for i in range(8)],
}


async def test_two_tabs_sending_at_once_keep_both_exchanges_whole_and_in_order(
    app: FakeUpstream, user: User, client: AsyncClient
) -> None:
    """Both sends race: the fake model holds each answer until both requests reached it,
    so neither exchange can finish before the other began."""
    from chat.tests.fakes.server import Pause

    arrived: list[str] = []
    held_together: list[bool] = []

    def answer(request: RecordedRequest) -> Response:
        question = request.json()["messages"][-1]["content"]
        arrived.append(question)

        def body() -> Iterator[Any]:
            deadline = time.monotonic() + 5.0
            while len(arrived) < 2 and time.monotonic() < deadline:
                yield Pause(0.01)
            held_together.append(len(arrived) == 2)
            yield from openai_fake.stream_chunks(TAB_ANSWERS[question], pause=0.02)

        return StreamResponse(body)

    app.set_default("POST", openai_fake.CHAT_PATH, answer)
    conversation = await make_conversation(user, "openai")
    tab_b = AsyncClient()
    await tab_b.aforce_login(user)
    tab_a_sees, tab_b_sees = await asyncio.gather(
        send(client, conversation, "question from tab A"),
        send(tab_b, conversation, "question from tab B"),
    )
    assert held_together == [True, True]  # the two requests were at the model at once
    assert (tab_a_sees.text, tab_b_sees.text) == tuple(
        "".join(TAB_ANSWERS[q]) for q in ("question from tab A", "question from tab B")
    )
    saved = [(m.role, m.status, m.content) for m in await messages_of(conversation)]
    first, second = saved[0][2], saved[2][2]  # whichever tab the database served first
    assert {first, second} == set(TAB_ANSWERS)
    assert saved == [
        ("user", "complete", first),
        ("assistant", "complete", "".join(TAB_ANSWERS[first])),
        ("user", "complete", second),
        ("assistant", "complete", "".join(TAB_ANSWERS[second])),
    ]


# --- a locked database (SQLite) ---------------------------------------------------------


@pytest.fixture
def sqlite_file(file_db: Path | None) -> Path:
    if file_db is None:
        pytest.skip("SQLite's database lock; PostgreSQL locks rows, not the database")
    return file_db


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another program's write transaction on the database file (BEGIN IMMEDIATE)."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


async def set_busy_timeout(seconds: float) -> None:
    """SQLite's busy timeout ("timeout" option) for connections opened from now on."""
    connections.settings["default"]["OPTIONS"]["timeout"] = seconds
    await asyncio.to_thread(_close_connections_everywhere)


async def test_briefly_locked_database_makes_a_send_wait_then_succeed(
    sqlite_file: Path, app: FakeUpstream, user: User, client: AsyncClient
) -> None:
    await set_busy_timeout(5)
    app.add("POST", openai_fake.CHAT_PATH, openai_fake.stream_response(GOOD_REPLY))
    conversation = await make_conversation(user, "openai")
    started = time.monotonic()
    with write_lock(sqlite_file) as holder:
        asyncio.get_running_loop().call_later(0.4, holder.execute, "ROLLBACK")
        outcome = await send(client, conversation, FIRST)
    assert time.monotonic() - started >= 0.4  # it did wait for the lock
    assert (outcome.status_code, outcome.last[0], outcome.text) == (
        200,
        "done",
        "".join(GOOD_REPLY),
    )


async def test_database_locked_past_the_busy_timeout_answers_503_with_a_clear_error(
    sqlite_file: Path, app: FakeUpstream, user: User, client: AsyncClient
) -> None:
    await set_busy_timeout(0.3)
    conversation = await make_conversation(user, "openai")
    with write_lock(sqlite_file):
        outcome = await send(client, conversation, FIRST)
    assert outcome.status_code == 503
    assert outcome.json["error"].startswith("The database is busy")


async def test_database_locked_past_the_busy_timeout_saves_nothing(
    sqlite_file: Path, app: FakeUpstream, user: User, client: AsyncClient
) -> None:
    await set_busy_timeout(0.3)
    conversation = await make_conversation(user, "openai")
    with write_lock(sqlite_file):
        await send(client, conversation, FIRST)
    await conversation.arefresh_from_db()
    assert (await messages_of(conversation), conversation.title) == ([], "")
    assert app.requests == []
