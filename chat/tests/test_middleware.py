"""Site-wide middleware (chat/middleware.py): a form body that is not valid UTF-8 is
refused with 400 and a clear message before any view sees it, on every form of the app,
and nothing changes. (The Content-Security-Policy: test_security.py.)"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from django.urls import reverse

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = "The request is not valid UTF-8 text."
CONVERSATION_ID = 4242
BOUNDARY = "----chat-ai-test-boundary"


@pytest.fixture
def alice() -> User:
    return User.objects.create_superuser("alice", "alice@example.com", "pw-alice-123")


@pytest.fixture
def conversation(alice: User, fake_provider: type) -> Conversation:
    conv = Conversation.objects.create(
        pk=CONVERSATION_ID, owner=alice, title="Plans", provider="fake", model="fake-small"
    )
    Message.objects.create(conversation=conv, role="user", content="earlier question")
    return conv


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def multipart(*fields: tuple[bytes, bytes], headers: bytes = b"") -> bytes:
    """A multipart/form-data body (RFC 7578) of raw field names and values."""
    body = b""
    for name, value in fields:
        body += (
            b"--" + BOUNDARY.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="'
            + name
            + b'"\r\n'
            + headers
            + b"\r\n"
            + value
            + b"\r\n"
        )
    return body + b"--" + BOUNDARY.encode() + b"--\r\n"


def state() -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    return (
        list(Conversation.objects.values_list("pk", "title", "provider", "model", "system_prompt")),
        list(Message.objects.values_list("pk", "role", "content", "status")),
        list(User.objects.values_list("pk", "username", "password", "is_active")),
    )


# Every route of the app that takes a form, with what it would change.
FORM_ROUTES = [
    ("chat:conversation_new", {}),
    ("chat:reply_new", {}),
    ("chat:reply", {"pk": CONVERSATION_ID}),
    ("chat:rename", {"pk": CONVERSATION_ID}),
    ("chat:settings", {"pk": CONVERSATION_ID}),
    ("chat:delete", {"pk": CONVERSATION_ID}),
    ("login", {}),
    ("signup", {}),
    ("admin:chat_conversation_change", {"object_id": str(CONVERSATION_ID)}),
]
BAD_URLENCODED = [
    b"content=%FF%FE&title=%FF&username=%FF&password=x&name=%FF&system_prompt=%FF",
    b"content=hi\xff&title=\xc3&username=\xe2\x82&password=x",  # raw bytes, not escaped
    b"%FF=1&content=hi",  # a field name
]


@pytest.mark.parametrize("body", BAD_URLENCODED, ids=["escaped", "raw", "name"])
@pytest.mark.parametrize(("route", "kwargs"), FORM_ROUTES, ids=[r for r, _ in FORM_ROUTES])
def test_a_form_post_that_is_not_utf8_is_refused_and_changes_nothing(
    alice_client: Client,
    conversation: Conversation,
    route: str,
    kwargs: dict[str, Any],
    body: bytes,
) -> None:
    before = state()
    response = alice_client.post(
        reverse(route, kwargs=kwargs), body, content_type="application/x-www-form-urlencoded"
    )
    assert (response.status_code, response.content.decode()) == (400, MESSAGE)
    assert state() == before


@pytest.mark.parametrize(("route", "kwargs"), FORM_ROUTES, ids=[r for r, _ in FORM_ROUTES])
def test_a_multipart_field_that_is_not_utf8_is_refused_and_changes_nothing(
    alice_client: Client, conversation: Conversation, route: str, kwargs: dict[str, Any]
) -> None:
    before = state()
    body = multipart((b"content", b"\xff\xfe hello"), (b"title", b"Caf\xe9"))
    response = alice_client.post(
        reverse(route, kwargs=kwargs),
        body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )
    assert (response.status_code, response.content.decode()) == (400, MESSAGE)
    assert state() == before


def test_a_base64_multipart_field_is_checked_once_decoded(
    alice_client: Client, conversation: Conversation
) -> None:
    body = multipart(
        (b"title", base64.b64encode(b"\xff\xfe")), headers=b"Content-Transfer-Encoding: base64\r\n"
    )
    response = alice_client.post(
        reverse("chat:rename", args=[conversation.pk]),
        body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )
    assert response.status_code == 400


def test_a_sign_in_that_is_not_utf8_is_refused_before_it_counts(alice: User) -> None:
    """The lockout does not count it either: it never reached authentication."""
    response = Client().post(
        reverse("login"),
        b"username=alice%FF&password=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert not AccessAttempt.objects.exists()


async def test_the_chat_page_gets_the_refusal_as_json(
    alice: User, conversation: Conversation, fake_provider: type
) -> None:
    """The page's script sends X-Requested-With and shows ``error`` from a JSON body."""
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.post(
        reverse("chat:reply", args=[conversation.pk]),
        b"content=%FF%FE%FD",
        content_type="application/x-www-form-urlencoded",
        headers={"X-Requested-With": "fetch"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": MESSAGE}
    assert fake_provider.calls == []
    assert await Message.objects.acount() == 1


@pytest.mark.parametrize(
    "content",
    ["Привет, мир", "emoji 🙂 and math ∑", "a real replacement character: \ufffd"],
)
def test_valid_utf8_text_is_accepted(
    alice_client: Client, conversation: Conversation, content: str
) -> None:
    """Not a false alarm: any text, the replacement character itself included."""
    response = alice_client.post(reverse("chat:rename", args=[conversation.pk]), {"title": content})
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == content


def test_valid_utf8_multipart_is_accepted(alice_client: Client, conversation: Conversation) -> None:
    body = multipart((b"title", "Ёжик в тумане".encode()))
    response = alice_client.post(
        reverse("chat:rename", args=[conversation.pk]),
        body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "Ёжик в тумане"


def test_a_form_body_over_the_memory_limit_is_refused_as_too_large(
    alice_client: Client, conversation: Conversation, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = alice_client.post(
        reverse("chat:rename", args=[conversation.pk]), {"title": "x" * 2000}
    )
    assert response.status_code == 413
    conversation.refresh_from_db()
    assert conversation.title == "Plans"
