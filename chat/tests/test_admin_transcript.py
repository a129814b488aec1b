"""The admin as an operator uses it (issue 9): a conversation reads as a rendered,
read-only transcript; filters find conversations by any model that answered in them; a
message admin lists, filters and searches every message; exports keep their shape."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.models import Conversation, Message
from chat.providers import get_provider

pytestmark = pytest.mark.django_db

CONVERSATIONS = reverse("admin:chat_conversation_changelist")
MESSAGES = reverse("admin:chat_message_changelist")


@pytest.fixture
def staff_client() -> Client:
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def owner() -> User:
    return User.objects.create_user("ivan", password="pw-ivan-12345")


def conversation_answered_by(owner: User, *answers: tuple[str, str], title: str) -> Conversation:
    """A conversation whose replies came from these (provider, model) pairs, in order;
    the conversation's own provider/model is the last one, as after switching models."""
    conv = Conversation.objects.create(
        owner=owner, title=title, provider=answers[-1][0], model=answers[-1][1]
    )
    for provider, model in answers:
        Message.objects.create(conversation=conv, role="user", content=f"ask {model}")
        Message.objects.create(
            conversation=conv,
            role="assistant",
            content=f"**bold** from {model}",
            content_html=f"<p><strong>bold</strong> from {model}</p>",
            provider=provider,
            model=model,
        )
    return conv


def test_a_conversation_page_is_a_rendered_read_only_transcript(
    staff_client: Client, owner: User
) -> None:
    conv = conversation_answered_by(owner, ("openai", "gpt-4o-mini"), title="Read me")
    html = staff_client.get(reverse("admin:chat_conversation_change", args=[conv.pk])).content
    page = html.decode()
    assert "<strong>bold</strong> from gpt-4o-mini" in page  # rendered, not source
    assert "<textarea" not in page and 'name="_save"' not in page
    assert "Add another Message" not in page and "DELETE" not in page
    # Nothing can be changed by a stray POST either.
    staff_client.post(
        reverse("admin:chat_conversation_change", args=[conv.pk]), {"title": "changed"}
    )
    conv.refresh_from_db()
    assert conv.title == "Read me"


def test_the_transcript_dates_read_as_the_rest_of_the_admin(
    staff_client: Client, owner: User
) -> None:
    # Was "2026-11-30 12:45" in every language.
    conv = conversation_answered_by(owner, ("openai", "gpt-4o-mini"), title="Dated")
    when = datetime.datetime(2026, 11, 30, 12, 45, tzinfo=datetime.UTC)
    Message.objects.filter(conversation=conv).update(created_at=when)
    url = reverse("admin:chat_conversation_change", args=[conv.pk])
    page = staff_client.get(url, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert ">30 ноября 2026 г. 12:45</time>" in page
    assert 'datetime="2026-11-30T12:45:00+00:00"' in page and "2026-11-30 12:45" not in page


def test_filters_find_conversations_by_any_model_that_answered(
    staff_client: Client, owner: User
) -> None:
    conversation_answered_by(
        owner, ("google", "gemini-2.5-flash"), ("openai", "gpt-4o-mini"), title="Switched"
    )
    conversation_answered_by(owner, ("openai", "gpt-4o-mini"), title="Only OpenAI")
    page = staff_client.get(CONVERSATIONS, {"answered_by": "google"}).content.decode()
    assert "Switched" in page and "Only OpenAI" not in page
    page = staff_client.get(
        CONVERSATIONS, {"answered_model": "google/gemini-2.5-flash"}
    ).content.decode()
    assert "Switched" in page and "Only OpenAI" not in page
    page = staff_client.get(CONVERSATIONS).content.decode()
    label = get_provider("google").label
    assert f"{label} · gemini-2.5-flash" in page  # offered as a filter choice, by label


def test_the_message_admin_lists_failed_replies_across_users(
    staff_client: Client, owner: User
) -> None:
    other = User.objects.create_user("olga", password="pw-olga-12345")
    for person in (owner, other):
        conv = Conversation.objects.create(owner=person, title=f"{person} chat", provider="x")
        Message.objects.create(conversation=conv, role="user", content="hello")
        Message.objects.create(
            conversation=conv,
            role="assistant",
            status="error",
            error=f"failure for {person}",
            provider="anthropic",
            model="claude-x",
        )
        Message.objects.create(
            conversation=conv, role="assistant", content="fine", provider="openai", model="m"
        )
    page = staff_client.get(MESSAGES, {"status__exact": "error"}).content.decode()
    assert "failure for ivan" in page and "failure for olga" in page
    assert page.count('class="field-short_content"') == 2
    page = staff_client.get(MESSAGES, {"provider": "openai"}).content.decode()
    assert page.count('class="field-short_content"') == 2
    detail = staff_client.get(
        reverse("admin:chat_message_change", args=[Message.objects.filter(status="error")[0].pk])
    ).content.decode()
    assert "<textarea" not in detail


def test_the_message_admin_searches_in_every_script(staff_client: Client, owner: User) -> None:
    conv = Conversation.objects.create(owner=owner, title="t", provider="x")
    Message.objects.create(conversation=conv, role="user", content="Ёжик в тумане")
    Message.objects.create(conversation=conv, role="user", content="something else")
    page = staff_client.get(MESSAGES, {"q": "ежик"}).content.decode()
    assert "Ёжик в тумане" in page and "something else" not in page


def test_the_message_admin_query_count_does_not_grow(staff_client: Client, owner: User) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(MESSAGES).status_code == 200
        return len(ctx.captured_queries)

    conversation_answered_by(owner, ("openai", "a"), title="one")
    few = queries()
    for i in range(20):
        conversation_answered_by(owner, ("openai", f"m{i}"), ("google", "g"), title=f"c{i}")
    assert queries() == few


def test_the_markdown_export_action_fences_each_message(staff_client: Client, owner: User) -> None:
    conv = Conversation.objects.create(owner=owner, title="Export me", provider="x")
    Message.objects.create(conversation=conv, role="user", content="## User\n\nnot a heading")
    response = staff_client.post(
        CONVERSATIONS, {"action": "export_markdown", "_selected_action": [conv.pk]}
    )
    body = response.content.decode()
    assert re.search(r"^```markdown\n## User\n\nnot a heading\n```$", body, re.M)


def test_the_message_admin_names_reasons_for_people_and_deletes_nothing(
    staff_client: Client, owner: User
) -> None:
    conv = Conversation.objects.create(owner=owner, title="t", provider="x")
    Message.objects.create(conversation=conv, role="user", content="q")
    reply = Message.objects.create(
        conversation=conv,
        role="assistant",
        status="incomplete",
        finish_reason="length",
        content="half",
        provider="openai",
        model="m",
    )
    page = staff_client.get(MESSAGES).content.decode()
    assert "token limit reached" in page
    assert "By provider (any reply)" in staff_client.get(CONVERSATIONS).content.decode()
    assert 'value="delete_selected"' not in page
    response = staff_client.post(
        reverse("admin:chat_message_delete", args=[reply.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Message.objects.filter(pk=reply.pk).exists()


def test_a_long_transcript_costs_a_constant_number_of_queries(
    staff_client: Client, owner: User
) -> None:
    def queries(conv: Conversation) -> int:
        url = reverse("admin:chat_conversation_change", args=[conv.pk])
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(url).status_code == 200
        return len(ctx.captured_queries)

    short = conversation_answered_by(owner, ("openai", "a"), title="short")
    long = conversation_answered_by(owner, *[("openai", f"m{i}") for i in range(40)], title="long")
    assert queries(long) == queries(short)
