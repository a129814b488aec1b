"""Faults through the whole app: the real view, service, provider and SDK against a
loopback fake upstream (``FakeUpstream``), as a person sees them.

Every fault must end in a clear inline ``error`` event naming the provider (or in a
retried success), keep the user's message, keep text that had streamed, never be sent
to the model as context later, and leave the conversation usable. Stop and disconnect
must close the upstream request at once and keep the partial reply; two tabs must not
mix their replies; a locked database must delay a send, or refuse it cleanly.

The SQLite test database is normally in memory (shared cache), where a lock fails at
once instead of waiting for the busy timeout and concurrent writers can collide; the
app runs on a file in WAL mode. So each test here copies the test database to a file
and points every connection at it (``file_db``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
        "gpt-4o-mini",
        "/v1",
        openai_fake.CHAT_PATH,
        openai_fake.stream_response,
        _openai_turns,
    ),
    "anthropic": Upstream(
        "anthropic",
        anthropic_fake.DEFAULT_MODEL,
        "",
        anthropic_fake.MESSAGES_PATH,
        anthropic_fake.stream_response,
        _openai_turns,
    ),
    "google": Upstream(
        "google",
        "gemini-3.5-flash",
        "",
        google_fake.STREAM_PATH,
        lambda texts: google_fake.text_stream(*texts),
        _google_turns,
    ),
    "mistral": Upstream(
        "mistral",
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
    events = []
    for block in body.decode().split("\n\n"):
        if block.strip() and not block.startswith(":"):
            lines = dict(line.split(": ", 1) for line in block.splitlines())
            events.append((lines["event"], json.loads(lines["data"])))
    return events


@dataclass
class Outcome:
    """One reply request as the browser saw it."""

    status_code: int
    events: list[tuple[str, Any]] = field(default_factory=list)
    json: Any = None

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
        return Outcome(response.status_code, json=json.loads(response.content))
    body = b"".join([chunk async for chunk in response.streaming_content])
    return Outcome(response.status_code, parse_sse(body))


async def make_conversation(user: User, provider: str) -> Conversation:
    return await Conversation.objects.acreate(
        owner=user, provider=provider, model=UPSTREAMS[provider].model
    )


async def messages_of(conversation: Conversation) -> list[Message]:
    return [m async for m in conversation.messages.order_by("created_at", "id")]


# --- the faults -------------------------------------------------------------------------


def _openai_malformed() -> StreamResponse:
    return StreamResponse([b"data: {this is not json\n\n"])


def _openai_malformed_after_text() -> StreamResponse:
    first = openai_fake.chunk("chatcmpl-x", delta={"role": "assistant", "content": "Hi "})
    return StreamResponse([sse(first), b"data: {this is not json\n\n"])


def _mistral_malformed() -> StreamResponse:
    return mistral_fake.raw_stream(
        [sse(mistral_fake.chunk("", role="assistant")), b"data: {this is not json\n\n"]
    )


@dataclass(frozen=True)
class Fault:
    id: str
    provider: str
    response: Callable[[], Response]  # the failing answer, built per request
    expected: str  # the error event's message starts with this
    partial: str = ""  # the text that streamed before the failure
    timeout: float = 10.0  # the provider's request timeout for the failing send


FAULTS = [
    Fault(
        "openai-401-invalid-key",
        "openai",
        lambda: openai_fake.error_response(401, "Incorrect API key provided: test-k***ults"),
        "OpenAI: invalid API key (check OPENAI_API_KEY)",
    ),
    Fault(
        "openai-403-forbidden",
        "openai",
        lambda: openai_fake.error_response(403, "Country, region, or territory not supported"),
        "OpenAI: Country, region, or territory not supported",
    ),
    Fault(
        "openai-404-unknown-model",
        "openai",
        lambda: openai_fake.error_response(
            404, "The model `gpt-4o-mini` does not exist or you do not have access to it."
        ),
        "OpenAI: The model `gpt-4o-mini` does not exist",
    ),
    Fault(
        "openai-429-persistent",
        "openai",
        lambda: openai_fake.error_response(
            429, "Rate limit reached for gpt-4o-mini", headers={"retry-after": "0"}
        ),
        "OpenAI: Rate limit reached for gpt-4o-mini",
    ),
    Fault(
        "openai-500",
        "openai",
        lambda: openai_fake.error_response(500, "The server had an error processing your request."),
        "OpenAI: The server had an error processing your request.",
    ),
    Fault(
        "openai-503",
        "openai",
        lambda: openai_fake.error_response(503, "The engine is currently overloaded."),
        "OpenAI: The engine is currently overloaded.",
    ),
    Fault(
        "openai-timeout-before-first-token",
        "openai",
        lambda: openai_fake.stream_response(["late"], delay=1.5),
        "OpenAI: no answer from 127.0.0.1:",  # "...:<port> within 0.3 s"
        timeout=0.3,
    ),
    Fault(
        "openai-cut-halfway",
        "openai",
        lambda: openai_fake.stream_response(["Hel", "lo ", "wor"], break_after=2),
        "OpenAI: the connection to 127.0.0.1:",  # "...:<port> was lost"
        partial="Hello ",
    ),
    Fault(
        "openai-malformed-sse",
        "openai",
        _openai_malformed,
        "OpenAI: the reply could not be read",
    ),
    Fault(
        "openai-malformed-after-text",
        "openai",
        _openai_malformed_after_text,
        "OpenAI: the reply could not be read",
        partial="Hi ",
    ),
    Fault(
        "openai-empty-reply",
        "openai",
        lambda: openai_fake.stream_response([]),
        "OpenAI: the model returned an empty reply",
    ),
    Fault(
        "anthropic-401-invalid-key",
        "anthropic",
        lambda: anthropic_fake.error_response(401),
        "Anthropic: invalid API key",
    ),
    Fault(
        "anthropic-529-overloaded",
        "anthropic",
        lambda: anthropic_fake.error_response(529),
        "Anthropic: Overloaded",
    ),
    Fault(
        "anthropic-cut-halfway",
        "anthropic",
        lambda: anthropic_fake.broken_stream(["Hello", " wor"]),
        "Anthropic: the connection dropped mid-reply",
        partial="Hello wor",
    ),
    Fault(
        "google-invalid-key",
        "google",
        google_fake.invalid_key,
        "Google Gemini: invalid API key (check GOOGLE_API_KEY)",
    ),
    Fault(
        "google-unknown-model",
        "google",
        lambda: google_fake.model_not_found("gemini-3.5-flash"),
        "Google Gemini: models/gemini-3.5-flash is not found",
    ),
    Fault(
        "google-cut-halfway",
        "google",
        lambda: google_fake.text_stream("Hello", " wor", end=Break()),
        "Google Gemini: the connection to the service broke off",
        partial="Hello wor",
    ),
    Fault(
        "mistral-401-invalid-key",
        "mistral",
        lambda: mistral_fake.error_response(401),
        "Mistral AI: invalid API key (check MISTRAL_API_KEY)",
    ),
    Fault(
        "mistral-cut-halfway",
        "mistral",
        lambda: mistral_fake.broken_stream(["Hello", " wor"]),
        "Mistral AI: the connection was lost",
        partial="Hello wor",
    ),
    Fault(
        "mistral-malformed-sse",
        "mistral",
        _mistral_malformed,
        "Mistral AI: the reply was malformed",
    ),
]


@dataclass
class Failed:
    """A conversation whose first send met ``fault``."""

    fault: Fault
    spec: Upstream
    conversation: Conversation = field(repr=False)
    outcome: Outcome


@pytest.fixture(params=FAULTS, ids=[f.id for f in FAULTS])
async def failed(
    request: pytest.FixtureRequest,
    app: FakeUpstream,
    settings: Any,
    user: User,
    client: AsyncClient,
) -> Failed:
    fault: Fault = request.param
    spec = UPSTREAMS[fault.provider]
    timeout_setting = f"{spec.name.upper()}_TIMEOUT"
    app.add("POST", spec.chat_path, fault.response())
    conversation = await make_conversation(user, fault.provider)
    setattr(settings, timeout_setting, fault.timeout)
    outcome = await send(client, conversation, FIRST)
    setattr(settings, timeout_setting, 10.0)
    return Failed(fault, spec, conversation, outcome)


async def test_fault_ends_in_an_inline_error_naming_the_provider(failed: Failed) -> None:
    kind, data = failed.outcome.last
    assert (failed.outcome.status_code, kind) == (200, "error")
    assert data["message"].startswith(failed.fault.expected)


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
    app.add("POST", failed.spec.chat_path, failed.spec.reply(GOOD_REPLY))
    await send(client, failed.conversation, SECOND)
    turns = failed.spec.turns(app.requests[-1].json())
    assert [role for role, _ in turns] == ["user"] * len(turns)
    sent = "\n".join(text for _, text in turns)
    assert FIRST in sent and SECOND in sent


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
    assert [kind for kind, _ in outcome.events] == ["start", "delta", "delta", "done"]
    assert outcome.text == "".join(GOOD_REPLY)


async def test_persistent_rate_limit_is_retried_then_reported(
    app: FakeUpstream, settings: Any, user: User, client: AsyncClient
) -> None:
    settings.LLM_MAX_RETRIES = 1
    limited = openai_fake.error_response(429, "Rate limit reached", headers={"retry-after": "0"})
    app.set_default("POST", openai_fake.CHAT_PATH, limited)
    conversation = await make_conversation(user, "openai")
    outcome = await send(client, conversation, FIRST)
    assert outcome.last == (
        "error",
        {
            "message": "OpenAI: Rate limit reached",
            "message_id": outcome.reply_id,
            "partial_html": "",
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


async def test_disconnect_closes_the_upstream_request_within_a_second(
    walked_away: Interrupted,
) -> None:
    assert await asyncio.to_thread(walked_away.upstream_request.client_closed.wait, 1.0)


async def test_disconnect_keeps_the_partial_reply_as_stopped(walked_away: Interrupted) -> None:
    async def saved() -> Message:
        while True:
            reply = await Message.objects.aget(pk=walked_away.reply_id)
            if reply.status != "streaming":
                return reply
            await asyncio.sleep(0.02)

    reply = await asyncio.wait_for(saved(), 2.0)
    assert (reply.status, reply.content) == ("stopped", walked_away.seen_text)
    assert reply.content.startswith("w0 w1 ")


# --- two tabs ---------------------------------------------------------------------------

TAB_ANSWERS = {
    "question from tab A": [f"A{i} " for i in range(8)],
    "question from tab B": [f"B{i} " for i in range(8)],
}


async def test_two_tabs_sending_at_once_keep_both_exchanges_whole_and_in_order(
    app: FakeUpstream, user: User, client: AsyncClient
) -> None:
    def answer(request: RecordedRequest) -> Response:
        question = request.json()["messages"][-1]["content"]
        return openai_fake.stream_response(TAB_ANSWERS[question], pause=0.03)

    app.set_default("POST", openai_fake.CHAT_PATH, answer)
    conversation = await make_conversation(user, "openai")
    tab_b = AsyncClient()
    await tab_b.aforce_login(user)
    url = reverse("chat:reply", args=[conversation.pk])
    response_a = await client.post(url, {"content": "question from tab A"})
    response_b = await tab_b.post(url, {"content": "question from tab B"})

    async def read(response: Any) -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    await asyncio.gather(read(response_a), read(response_b))
    saved = [(m.role, m.status, m.content) for m in await messages_of(conversation)]
    assert saved == [
        ("user", "complete", "question from tab A"),
        ("assistant", "complete", "".join(TAB_ANSWERS["question from tab A"])),
        ("user", "complete", "question from tab B"),
        ("assistant", "complete", "".join(TAB_ANSWERS["question from tab B"])),
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
