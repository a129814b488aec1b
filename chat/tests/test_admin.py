"""Django admin for conversations: columns, constant query count, search, exports."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:chat_conversation_changelist")


@pytest.fixture
def staff_client() -> Client:
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
    client = Client()
    client.force_login(admin)
    return client


def make_conversations(owner: User, count: int, *, start: int = 0) -> None:
    for i in range(start, start + count):
        conv = Conversation.objects.create(
            owner=owner, title=f"Conversation {i}", provider="openai", model="gpt-4o-mini"
        )
        Message.objects.create(conversation=conv, role="user", content=f"question {i}")
        Message.objects.create(
            conversation=conv,
            role="assistant",
            content=f"answer {i}",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=10,
            output_tokens=5,
        )


def changelist_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_changelist_query_count_does_not_grow_with_rows(staff_client: Client) -> None:
    owner = User.objects.create_user("owner", password="pw-owner-123")
    make_conversations(owner, 3)
    few = changelist_queries(staff_client)
    make_conversations(owner, 30, start=3)
    many = changelist_queries(staff_client)
    assert many == few


def test_changelist_shows_message_count_and_tokens(staff_client: Client) -> None:
    owner = User.objects.create_user("owner", password="pw-owner-123")
    make_conversations(owner, 1)
    html = staff_client.get(CHANGELIST).content.decode()
    assert "Conversation 0" in html
    assert '<td class="field-message_count">2</td>' in html
    assert '<td class="field-total_tokens">15</td>' in html


def test_search_finds_message_text_without_duplicates(staff_client: Client) -> None:
    owner = User.objects.create_user("owner", password="pw-owner-123")
    make_conversations(owner, 3)
    conv = Conversation.objects.get(title="Conversation 1")
    Message.objects.create(conversation=conv, role="user", content="zebra crossing")
    Message.objects.create(conversation=conv, role="assistant", content="zebra stripes")
    response = staff_client.get(CHANGELIST, {"q": "zebra"})
    assert list(response.context["cl"].result_list) == [conv]


def admin_search(client: Client, query: str) -> list[str]:
    response = client.get(CHANGELIST, {"q": query})
    assert response.status_code == 200
    return sorted(c.title for c in response.context["cl"].result_list)


@pytest.mark.parametrize(
    ("query", "found"),
    [
        pytest.param("привет", ["Привет мир"], id="cyrillic-title-lower"),
        pytest.param("ПРИВЕТ", ["Привет мир"], id="cyrillic-title-upper"),
        pytest.param("пр", ["Привет мир"], id="cyrillic-title-two-letters"),
        pytest.param("ежик", ["Ёжик"], id="yo-as-ye-in-title"),
        pytest.param("ЕЛКА", ["Лес"], id="yo-as-ye-in-message-text"),
        pytest.param("σίσυφος", ["Лес"], id="greek-final-sigma-in-message-text"),
        pytest.param("МИР привет", ["Привет мир"], id="every-word-in-any-case"),
        pytest.param("ёлка ΣΊΣΥΦΟΣ", ["Лес"], id="words-across-messages"),
        pytest.param('"ЗЕЛЁНАЯ ЁЛКА"', ["Лес"], id="quoted-phrase"),
    ],
)
def test_search_matches_titles_and_messages_in_any_case_and_script(
    staff_client: Client, query: str, found: list[str]
) -> None:
    owner = User.objects.create_user("owner", password="pw-owner-123")
    for title in ("Привет мир", "Ёжик"):
        Conversation.objects.create(owner=owner, title=title, provider="openai", model="m")
    forest = Conversation.objects.create(owner=owner, title="Лес", provider="openai", model="m")
    Message.objects.create(conversation=forest, role="user", content="Зелёная Ёлка")
    Message.objects.create(conversation=forest, role="assistant", content="ΣΊΣΥΦΟΣ")
    assert admin_search(staff_client, query) == found


def test_change_page_shows_messages_inline(staff_client: Client) -> None:
    owner = User.objects.create_user("owner", password="pw-owner-123")
    make_conversations(owner, 1)
    conv = Conversation.objects.get()
    html = staff_client.get(reverse("admin:chat_conversation_change", args=[conv.pk])).content
    assert b"question 0" in html and b"answer 0" in html


def test_export_json(staff_client: Client) -> None:
    owner = User.objects.create_user("owner", password="pw-owner-123")
    make_conversations(owner, 2)
    first = Conversation.objects.get(title="Conversation 0")
    response = staff_client.post(
        CHANGELIST, {"action": "export_json", "_selected_action": [first.pk]}
    )
    assert response["Content-Disposition"].endswith('.json"')
    data = json.loads(response.content)
    assert len(data) == 1
    assert [m["content"] for m in data[0]["messages"]] == ["question 0", "answer 0"]
    assert data[0]["owner"] == "owner"


def test_export_markdown(staff_client: Client) -> None:
    owner = User.objects.create_user("owner", password="pw-owner-123")
    make_conversations(owner, 1)
    ids = list(Conversation.objects.values_list("pk", flat=True))
    response = staff_client.post(CHANGELIST, {"action": "export_markdown", "_selected_action": ids})
    text = response.content.decode()
    assert text.startswith("# Conversation 0")
    assert "## Assistant (openai / gpt-4o-mini)" in text
    assert "answer 0" in text


def test_admin_requires_staff(client: Client) -> None:
    user = User.objects.create_user("plain", password="pw-plain-123")
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
