"""Views: login, ownership, status codes, and the SSE stream through Django's client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from django.urls import reverse

from chat.models import Conversation, Message
from chat.sse import parse_sse
from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def conversation(alice: User, fake_provider: type) -> Conversation:
    conv = Conversation.objects.create(
        owner=alice, title="Alice's plans", provider="fake", model="fake-small"
    )
    Message.objects.create(conversation=conv, role="user", content="secret plans")
    Message.objects.create(
        conversation=conv, role="assistant", content="noted", provider="fake", model="fake-small"
    )
    return conv


def sse_events(body: bytes) -> list[tuple[str, Any]]:
    """(event name, data) of a whole SSE body, read by the project's one reader."""
    return [(event.event, event.data) for event in parse_sse(body)]


async def stream_body(response: Any) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


# --- login required ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chat:index"])
def test_pages_redirect_anonymous_users_to_login(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_stream_requires_login(client: Client, conversation: Conversation) -> None:
    response = client.post(reverse("chat:reply", args=[conversation.pk]), {"content": "hi"})
    assert response.status_code == 302
    assert not Message.objects.filter(content="hi").exists()


# --- isolation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name", "data"),
    [
        ("get", "chat:conversation", None),
        ("post", "chat:reply", {"content": "let me in"}),
        ("post", "chat:rename", {"title": "mine now"}),
        ("post", "chat:delete", {}),
        ("post", "chat:settings", {"system_prompt": "evil"}),
        ("post", "chat:seen", {}),
    ],
)
def test_other_users_conversation_answers_404(
    bob: User, conversation: Conversation, method: str, name: str, data: Any
) -> None:
    client = Client()
    client.force_login(bob)
    response = getattr(client, method)(reverse(name, args=[conversation.pk]), data)
    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.title == "Alice's plans"
    assert conversation.system_prompt == ""
    assert conversation.messages.count() == 2


@pytest.mark.parametrize("name", ["chat:message", "chat:stop", "chat:events"])
def test_other_users_message_answers_404(bob: User, conversation: Conversation, name: str) -> None:
    client = Client()
    client.force_login(bob)
    message = conversation.messages.last()
    method = client.post if name == "chat:stop" else client.get
    assert method(reverse(name, args=[message.pk])).status_code == 404


def test_the_sidebar_status_lists_only_ones_own_conversations(
    bob: User, conversation: Conversation
) -> None:
    client = Client()
    client.force_login(bob)
    response = client.get(reverse("chat:status") + f"?ids={conversation.pk}")
    assert response.json() == {"conversations": {}}


def test_missing_conversation_answers_404(alice_client: Client) -> None:
    assert alice_client.get(reverse("chat:conversation", args=[999999])).status_code == 404


def test_non_numeric_id_answers_404(alice_client: Client) -> None:
    assert alice_client.get("/c/abc/").status_code == 404


# --- methods and CSRF ---------------------------------------------------------------------


def test_get_to_a_post_endpoint_answers_405(
    alice_client: Client, conversation: Conversation
) -> None:
    assert alice_client.get(reverse("chat:reply", args=[conversation.pk])).status_code == 405
    assert alice_client.get(reverse("chat:delete", args=[conversation.pk])).status_code == 405


def test_missing_csrf_token_answers_403(alice: User, conversation: Conversation) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("chat:delete", args=[conversation.pk]))
    assert response.status_code == 403
    assert Conversation.objects.filter(pk=conversation.pk).exists()


# --- conversation actions ---------------------------------------------------------------


def test_new_conversation_returns_its_urls(alice_client: Client, fake_provider: type) -> None:
    response = alice_client.post(
        reverse("chat:conversation_new"), {"provider": "fake", "model": "fake-large"}
    )
    assert response.status_code == 201
    data = response.json()
    conversation = Conversation.objects.get(pk=data["id"])
    assert (conversation.provider, conversation.model) == ("fake", "fake-large")
    assert data["reply_url"] == reverse("chat:reply", args=[conversation.pk])


def test_new_conversation_with_unknown_provider_is_rejected(alice_client: Client) -> None:
    response = alice_client.post(reverse("chat:conversation_new"), {"provider": "nope"})
    assert response.status_code == 400
    assert "Unknown provider" in response.json()["error"]
    assert not Conversation.objects.exists()


def test_rename(alice_client: Client, conversation: Conversation) -> None:
    alice_client.post(reverse("chat:rename", args=[conversation.pk]), {"title": "  New   name "})
    conversation.refresh_from_db()
    assert conversation.title == "New name"


def test_delete(alice_client: Client, conversation: Conversation) -> None:
    response = alice_client.post(reverse("chat:delete", args=[conversation.pk]))
    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.exists()


def test_settings_out_of_range_change_nothing(
    alice_client: Client, conversation: Conversation
) -> None:
    alice_client.post(
        reverse("chat:settings", args=[conversation.pk]),
        {"system_prompt": "x", "temperature": "5", "max_tokens": "10"},
    )
    conversation.refresh_from_db()
    assert (conversation.system_prompt, conversation.temperature, conversation.max_tokens) == (
        "",
        None,
        None,
    )


def test_settings_are_saved(alice_client: Client, conversation: Conversation) -> None:
    alice_client.post(
        reverse("chat:settings", args=[conversation.pk]),
        {"system_prompt": "Be terse", "temperature": "0.4", "max_tokens": "256"},
    )
    conversation.refresh_from_db()
    assert (conversation.system_prompt, conversation.temperature, conversation.max_tokens) == (
        "Be terse",
        0.4,
        256,
    )


# --- the stream -------------------------------------------------------------------------


async def test_reply_streams_sse_with_proxy_friendly_headers(
    alice: User, conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["Hi ", "Alice"]))
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.post(
        reverse("chat:reply", args=[conversation.pk]), {"content": "hello"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["X-Accel-Buffering"] == "no"
    assert "no-cache" in response["Cache-Control"]
    assert "Content-Encoding" not in response
    events = sse_events(await stream_body(response))
    assert events[0][0] == "start" and events[-1][0] == "done"
    assert "".join(d["text"] for e, d in events if e == "delta") == "Hi Alice"


async def test_reply_with_empty_message_is_400_and_saves_nothing(
    alice: User, conversation: Conversation
) -> None:
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.post(reverse("chat:reply", args=[conversation.pk]), {"content": "   "})
    assert response.status_code == 400
    assert "empty" in json.loads(response.content)["error"]
    assert await Message.objects.acount() == 2


def test_message_detail_reports_status(alice_client: Client, conversation: Conversation) -> None:
    reply = conversation.messages.get(role="assistant")
    data = alice_client.get(reverse("chat:message", args=[reply.pk])).json()
    assert (data["status"], data["content"], data["model"]) == ("complete", "noted", "fake-small")


def test_new_conversation_with_unknown_model_is_rejected(
    alice_client: Client, fake_provider: type
) -> None:
    response = alice_client.post(
        reverse("chat:conversation_new"), {"provider": "fake", "model": "nope"}
    )
    assert response.status_code == 400
    assert "Unknown model" in response.json()["error"]
    assert not Conversation.objects.exists()
