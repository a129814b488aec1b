"""API keys never leak: not in pages, the provider menu, reply streams, message JSON,
the admin and its exports, the login page, the logs, the saved errors (the plain
sentence people see and the detail kept for staff), nor in the str()/repr() of
providers and their errors. Staff see more than other people (the error's detail, with
the upstream's own words), so the surfaces are searched as both.

Every cloud provider and one OpenAI-compatible endpoint get a recognisable fake key,
shaped like the real ones, and talk to their own ``FakeUpstream``. The upstreams are
as unkind as they get: error bodies echo the key back (as OpenAI's 401 does in part,
and as gateways and proxies do in full), and the models endpoints answer such a 401
too, so the provider menu logs its fallback. Each surface is then searched for every
key and for its distinctive parts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import AsyncClient, RequestFactory
from django.urls import reverse
from django.views.debug import technical_500_response

from chat.models import Conversation, Message
from chat.providers import (
    PROVIDER_REGISTRY,
    ProviderError,
    get_provider,
    register_openai_compatible,
)
from chat.tests.fakes import anthropic_fake, google_fake, mistral_fake, openai_fake
from chat.tests.fakes.server import FakeUpstream, Response

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Secret:
    key: str
    parts: tuple[str, ...]  # distinctive pieces that must not show up either

    @property
    def fragments(self) -> tuple[str, ...]:
        return (self.key, *self.parts)


# Shaped like the real keys (prefixes, lengths), and easy to spot.
SECRETS = {
    "openai": Secret("sk-test-SECRET-openai-7f3a9c", ("SECRET-openai", "7f3a9c")),
    "anthropic": Secret("sk-ant-test-SECRET-anthropic-2b8e1d", ("SECRET-anthropic", "2b8e1d")),
    "google": Secret("AIzaSyTest-SECRET-google-9c4f2a", ("SECRET-google", "9c4f2a")),
    # Mistral keys are 32 letters and digits.
    "mistral": Secret("SECRETmistral5d7b3eQ8wLp2Vx9Rt4Y", ("SECRETmistral", "5d7b3e")),
    # A self-hosted endpoint's key can be any string at all.
    "acme": Secret("acme-SECRET-compat-8a1f6c", ("SECRET-compat", "8a1f6c")),
}
COMPATIBLE = "acme"


def leaks(text: str) -> list[str]:
    """The keys (or parts of them) found in ``text``."""
    return [f for secret in SECRETS.values() for f in secret.fragments if f in text]


def assert_no_key(surfaces: dict[str, str]) -> None:
    found = {where: leaks(text) for where, text in surfaces.items()}
    assert {where: hit for where, hit in found.items() if hit} == {}


# --- upstreams that echo the key --------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """One provider's fake upstream: where it lives, how it answers and fails."""

    base_path: str
    model: str
    chat_path: str
    models_path: str
    reply: Callable[[list[str]], Response]
    error: Callable[[int, str], Response]  # error(status, message)


WIRES = {
    "openai": Wire(
        "/v1",
        "gpt-4o-mini",
        openai_fake.CHAT_PATH,
        openai_fake.MODELS_PATH,
        openai_fake.stream_response,
        openai_fake.error_response,
    ),
    "anthropic": Wire(
        "",
        anthropic_fake.DEFAULT_MODEL,
        anthropic_fake.MESSAGES_PATH,
        anthropic_fake.MODELS_PATH,
        anthropic_fake.stream_response,
        anthropic_fake.error_response,
    ),
    "google": Wire(
        "",
        "gemini-3.5-flash",
        google_fake.STREAM_PATH,
        google_fake.MODELS_PATH,
        lambda texts: google_fake.text_stream(*texts),
        lambda status, message: google_fake.error_response(
            status, message, reason="API_KEY_INVALID" if status == 400 else None
        ),
    ),
    "mistral": Wire(
        "",
        mistral_fake.DEFAULT_MODEL,
        mistral_fake.CHAT_PATH,
        mistral_fake.MODELS_PATH,
        mistral_fake.chat_stream,
        mistral_fake.error_response,
    ),
    "acme": Wire(
        "/v1",
        "acme-chat",
        openai_fake.CHAT_PATH,
        openai_fake.MODELS_PATH,
        openai_fake.stream_response,
        openai_fake.error_response,
    ),
}
ECHO_STATUSES = (400, 401, 403, 429, 500)


def echo(name: str, status: int) -> Response:
    """An error whose body quotes the request's key, whole and in the auth header."""
    key = SECRETS[name].key
    return WIRES[name].error(
        status, f"Incorrect API key provided: {key}. Header was 'Authorization: Bearer {key}'"
    )


@pytest.fixture
def upstreams(settings: Any) -> Iterator[dict[str, FakeUpstream]]:
    """Every provider configured with its key against its own fake upstream, whose
    models endpoint answers a 401 that echoes the key."""
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(FakeUpstream()) for name in SECRETS}
        for name, server in servers.items():
            server.set_default("GET", WIRES[name].models_path, echo(name, 401))
            if name == COMPATIBLE:
                continue
            prefix = name.upper()
            setattr(settings, f"{prefix}_API_KEY", SECRETS[name].key)
            setattr(settings, f"{prefix}_BASE_URL", server.url + WIRES[name].base_path)
            setattr(settings, f"{prefix}_TIMEOUT", 10.0)
        compatible = {
            "base_url": servers[COMPATIBLE].url + "/v1",
            "api_key": SECRETS[COMPATIBLE].key,
            "label": "Acme",
            "timeout": 10.0,
        }
        settings.OPENAI_COMPATIBLE_ENDPOINTS = {COMPATIBLE: compatible}
        registered_before = PROVIDER_REGISTRY.get(COMPATIBLE)
        register_openai_compatible(settings.OPENAI_COMPATIBLE_ENDPOINTS)
        settings.LLM_MAX_RETRIES = 0
        settings.CHAT_RATE_LIMIT_MESSAGES = 0
        cache.clear()  # no model list from an earlier test
        try:
            yield servers
        finally:
            PROVIDER_REGISTRY.pop(COMPATIBLE, None)
            if registered_before is not None:
                PROVIDER_REGISTRY[COMPATIBLE] = registered_before


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, the SDKs' and HTTP libraries' included."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.fixture
def user() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
async def client(user: User) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


@pytest.fixture
async def staff_client() -> AsyncClient:
    admin = await User.objects.acreate_superuser("boss", "boss@example.com", "pw-boss-123")
    client = AsyncClient()
    await client.aforce_login(admin)
    return client


async def send(client: AsyncClient, conversation: Conversation, content: str) -> str:
    """The whole SSE body of one reply (or the JSON error of a refused one)."""
    response = await client.post(
        reverse("chat:reply", args=[conversation.pk]), {"content": content}
    )
    if not response.streaming:
        return response.content.decode()
    return b"".join([chunk async for chunk in response.streaming_content]).decode()


VIEWERS = ["person", "staff"]


@dataclass
class History:
    """One conversation per provider: a reply that failed on an echoed 401, then one
    that worked. ``streams`` holds what the browser received; ``staff`` says whether
    the owner is staff (and so is shown the errors' detail)."""

    conversations: dict[str, Conversation]
    streams: dict[str, str]
    staff: bool = False


@pytest.fixture
async def history(
    request: pytest.FixtureRequest,
    upstreams: dict[str, FakeUpstream],
    user: User,
    client: AsyncClient,
) -> History:
    """Made by a person who is not staff, or by staff with ``indirect`` "staff"."""
    staff = getattr(request, "param", "person") == "staff"
    if staff:
        user.is_staff = True
        await user.asave(update_fields=["is_staff"])
    conversations, streams = {}, {}
    for name, server in upstreams.items():
        wire = WIRES[name]
        conversation = await Conversation.objects.acreate(
            owner=user, provider=name, model=wire.model, title=f"{name} chat"
        )
        server.add("POST", wire.chat_path, echo(name, 401), wire.reply(["Hello ", "there."]))
        streams[f"{name} error stream"] = await send(client, conversation, "first try")
        streams[f"{name} reply stream"] = await send(client, conversation, "second try")
        conversations[name] = conversation
    return History(conversations, streams, staff)


@pytest.fixture
async def echoed(
    upstreams: dict[str, FakeUpstream], client: AsyncClient, history: History
) -> dict[str, str]:
    """One more failed reply per provider and status of ``ECHO_STATUSES``, each error
    body quoting the key: the error streams, by "<provider> <status>"."""
    streams = {}
    for name, server in upstreams.items():
        for status in ECHO_STATUSES:
            server.add("POST", WIRES[name].chat_path, echo(name, status))
            streams[f"{name} {status}"] = await send(
                client, history.conversations[name], f"status {status}"
            )
    return streams


# --- pages and streams ------------------------------------------------------------------


async def test_chat_page_and_provider_menu_show_no_key(
    upstreams: dict[str, FakeUpstream], client: AsyncClient
) -> None:
    html = (await client.get(reverse("chat:index"))).content.decode()
    assert "Acme" in html and "Google Gemini" in html  # the menu is there
    assert_no_key({"chat page": html})


@pytest.mark.parametrize("history", VIEWERS, indirect=True)
async def test_conversation_page_shows_no_key(client: AsyncClient, history: History) -> None:
    pages = {
        name: (await client.get(reverse("chat:conversation", args=[c.pk]))).content.decode()
        for name, c in history.conversations.items()
    }
    # Staff are shown each error's detail, people only the plain sentence.
    assert ("invalid API key" in pages["openai"]) == history.staff
    assert "refused this server" in pages["openai"]
    assert_no_key(pages)


@pytest.mark.parametrize("history", VIEWERS, indirect=True)
async def test_reply_streams_show_no_key(history: History) -> None:
    errors = [history.streams[f"{n} error stream"] for n in SECRETS]
    assert all("event: error" in stream for stream in errors)
    assert all(('"detail"' in stream) == history.staff for stream in errors)
    assert_no_key(history.streams)


@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize("status", ECHO_STATUSES)
@pytest.mark.parametrize("name", list(SECRETS))
async def test_error_stream_hides_a_key_the_upstream_echoes(
    upstreams: dict[str, FakeUpstream],
    user: User,
    client: AsyncClient,
    name: str,
    status: int,
    viewer: str,
) -> None:
    user.is_staff = viewer == "staff"
    await user.asave(update_fields=["is_staff"])
    conversation = await Conversation.objects.acreate(
        owner=user, provider=name, model=WIRES[name].model
    )
    upstreams[name].add("POST", WIRES[name].chat_path, echo(name, status))
    body = await send(client, conversation, "hello")
    assert "event: error" in body
    assert ('"detail"' in body) == user.is_staff
    assert_no_key({f"{name} {status} stream": body})


@pytest.mark.parametrize("history", VIEWERS, indirect=True)
async def test_message_json_shows_no_key(client: AsyncClient, history: History) -> None:
    replies = [
        m async for m in Message.objects.filter(role="assistant").order_by("created_at", "id")
    ]
    bodies = {
        f"message {m.pk} ({m.provider}, {m.status})": (
            await client.get(reverse("chat:message", args=[m.pk]))
        ).content.decode()
        for m in replies
    }
    assert len(bodies) == 2 * len(SECRETS)
    errors = [json.loads(body) for body in bodies.values() if json.loads(body)["error"]]
    assert [("error_detail" in data) for data in errors] == [history.staff] * len(SECRETS)
    assert_no_key(bodies)


async def test_saved_errors_hold_no_key(history: History, echoed: dict[str, str]) -> None:
    failed = [m async for m in Message.objects.filter(status="error")]
    saved = {
        f"message {m.pk} ({m.provider}, {m.error_kind})": "\n".join(
            (m.error, m.error_detail, m.content, m.content_html, m.reasoning)
        )
        for m in failed
    }
    assert len(failed) == len(SECRETS) * (1 + len(ECHO_STATUSES))
    # The detail keeps the upstream's words (without the key) for staff and the log.
    assert all(m.error and m.error_detail for m in failed)
    assert any("Incorrect API key provided: [redacted]" in m.error_detail for m in failed)
    assert_no_key(saved)


# --- the admin --------------------------------------------------------------------------


async def test_admin_changelist_and_change_pages_show_no_key(
    staff_client: AsyncClient, history: History
) -> None:
    pages = {"changelist": reverse("admin:chat_conversation_changelist")}
    for name, conversation in history.conversations.items():
        pages[f"{name} change page"] = reverse(
            "admin:chat_conversation_change", args=[conversation.pk]
        )
    html = {where: (await staff_client.get(url)).content.decode() for where, url in pages.items()}
    assert "refused this server" in html["openai change page"]  # the errors are shown
    assert_no_key(html)


@pytest.mark.parametrize("action", ["export_json", "export_markdown"])
async def test_admin_exports_hold_no_key(
    staff_client: AsyncClient, history: History, action: str
) -> None:
    response = await staff_client.post(
        reverse("admin:chat_conversation_changelist"),
        {"action": action, "_selected_action": [c.pk for c in history.conversations.values()]},
    )
    body = response.content.decode()
    assert "attachment" in response["Content-Disposition"] and "first try" in body
    assert_no_key({action: body})


# --- sign-in ----------------------------------------------------------------------------


async def test_login_page_shows_no_key(upstreams: dict[str, FakeUpstream]) -> None:
    client = AsyncClient()
    page = (await client.get(reverse("login"))).content.decode()
    failed = (
        await client.post(reverse("login"), {"username": "nobody", "password": "wrong-pw-1"})
    ).content.decode()
    assert_no_key({"login page": page, "failed login": failed})


# --- logs -------------------------------------------------------------------------------


async def test_logs_hold_no_key(
    logs: pytest.LogCaptureFixture,
    upstreams: dict[str, FakeUpstream],
    client: AsyncClient,
    staff_client: AsyncClient,
    history: History,
) -> None:
    """Everything above once more, with every logger at DEBUG."""
    await client.get(reverse("chat:index"))
    for conversation in history.conversations.values():
        await client.get(reverse("chat:conversation", args=[conversation.pk]))
        await staff_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    for name, server in upstreams.items():
        conversation = history.conversations[name]
        for status in ECHO_STATUSES:
            server.add("POST", WIRES[name].chat_path, echo(name, status))
            await send(client, conversation, f"status {status}")
    assert len(logs.records) > 20  # the SDKs and the app did log
    records = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in logs.records)
    assert_no_key({"formatted log": logs.text, "log records": records})


# --- objects ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SECRETS))
def test_provider_str_and_repr_hold_no_key(upstreams: dict[str, FakeUpstream], name: str) -> None:
    provider = get_provider(name)
    assert provider.api_key == SECRETS[name].key  # configured, and so at risk
    assert_no_key({"str": str(provider), "repr": repr(provider)})


@pytest.mark.parametrize("status", ECHO_STATUSES)
@pytest.mark.parametrize("name", list(SECRETS))
async def test_provider_error_holds_no_key(
    upstreams: dict[str, FakeUpstream], name: str, status: int
) -> None:
    upstreams[name].add("POST", WIRES[name].chat_path, echo(name, status))
    provider = get_provider(name)
    with pytest.raises(ProviderError) as caught:
        await provider.complete([{"role": "user", "content": "hi"}], WIRES[name].model)
    error = caught.value
    assert_no_key({"str": str(error), "repr": repr(error), "args": repr(error.args)})


ODD_KEY = "plain-SECRET-odd-4e9d1b"  # no known prefix, short: no pattern catches it


@pytest.mark.parametrize(
    "name",
    ["openai", "anthropic", "google", "mistral", "acme"],
)
async def test_a_key_of_any_shape_echoed_by_the_upstream_is_removed_from_errors(
    upstreams: dict[str, FakeUpstream], name: str
) -> None:
    """A gateway in front of a provider may hand out keys of its own shape."""
    upstreams[name].add(
        "POST", WIRES[name].chat_path, WIRES[name].error(403, f"key {ODD_KEY} is not allowed")
    )
    provider_class = PROVIDER_REGISTRY[name]
    provider = provider_class(
        api_key=ODD_KEY,
        base_url=upstreams[name].url + WIRES[name].base_path,
        timeout=10.0,
        max_retries=0,
        name=name,
    )
    with pytest.raises(ProviderError) as caught:
        await provider.complete([{"role": "user", "content": "hi"}], WIRES[name].model)
    assert "4e9d1b" not in f"{caught.value} {caught.value!r}"


def test_debug_error_page_masks_keys(upstreams: dict[str, FakeUpstream], settings: Any) -> None:
    """With DEBUG on, Django's error page lists the settings: keys must be masked,
    the compatible endpoints' nested ones too."""
    settings.DEBUG = True
    request = RequestFactory().get("/")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        page = technical_500_response(request, *sys.exc_info()).content.decode()
    assert "OPENAI_API_KEY" in page  # the settings are listed
    assert_no_key({"debug page": page})
