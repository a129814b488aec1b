"""Exports whose structure survives any message content (issue 9)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from markdown_it import MarkdownIt

from chat.exports import conversations_export_rows, conversations_to_markdown, fenced
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db

HOSTILE = [
    "## User\n\nI am not a real heading",
    "```\nunclosed fence",
    "````python\nprint(1)\n````\n\n# Title\n\n- list",
    "~~~\ntilde fence\n~~~",
    "plain text",
]


def test_message_headings_and_fences_cannot_break_the_structure() -> None:
    owner = User.objects.create_user("alice", password="pw-alice-123")
    conversation = Conversation.objects.create(owner=owner, title="Tricky", provider="fake")
    for i, text in enumerate(HOSTILE):
        Message.objects.create(
            conversation=conversation, role="user" if i % 2 == 0 else "assistant", content=text
        )
    markdown = conversations_to_markdown(
        conversations_export_rows(Conversation.objects.filter(pk=conversation.pk))
    )
    tokens = MarkdownIt("commonmark").parse(markdown)
    headings = [
        tokens[i + 1].content
        for i, token in enumerate(tokens)
        if token.type == "heading_open" and token.level == 0
    ]
    assert headings[0] == "Tricky"
    assert headings[1:] == [
        "User",
        "Assistant ( / )",
        "User",
        "Assistant ( / )",
        "User",
    ]
    fences = [token.content.removesuffix("\n") for token in tokens if token.type == "fence"]
    assert fences == HOSTILE


@pytest.mark.parametrize("text", HOSTILE)
def test_a_fenced_text_comes_back_whole(text: str) -> None:
    tokens = MarkdownIt("commonmark").parse(fenced(text))
    assert [t.type for t in tokens] == ["fence"]
    assert tokens[0].content == text + "\n"


@pytest.mark.django_db
def test_a_replys_cost_is_written_as_plain_decimals() -> None:
    """A free model's cost (stored as 0E-10 by some databases) reads "0", a priced one
    as a fixed-point number, never in exponent form."""
    from decimal import Decimal

    from usage.models import UsageRecord

    owner = User.objects.create_user("cost-owner", password="pw-cost-123")
    conversation = Conversation.objects.create(owner=owner, provider="local", model="m")
    question = Message.objects.create(conversation=conversation, role="user", content="Hi")
    free, priced = (
        Message.objects.create(
            conversation=conversation, role="assistant", content="Hello", parent=question
        )
        for _ in range(2)
    )
    for reply, cost in ((free, Decimal("0E-10")), (priced, Decimal("0.0001230000"))):
        UsageRecord.objects.create(
            user=owner,
            source="chat",
            provider="local",
            model="m",
            outcome="complete",
            reply=reply,
            cost=cost,
        )
    [row] = conversations_export_rows(Conversation.objects.filter(pk=conversation.pk))
    costs = {m["id"]: m.get("cost_usd") for m in row["messages"]}
    assert (costs[free.pk], costs[priced.pk]) == ("0", "0.000123")


def test_a_russian_markdown_export_says_status_and_time_in_russian() -> None:
    """The Markdown is for people: status words and the date in their language (as the
    admin shows dates); the JSON rows keep ISO 8601 and the status codes."""
    import datetime

    from django.utils import translation

    owner = User.objects.create_user("masha", password="pw-masha-123")
    conversation = Conversation.objects.create(owner=owner, title="Отчёт", provider="fake")
    question = Message.objects.create(conversation=conversation, role="user", content="Hi")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Half",
        parent=question,
        status=Message.Status.INCOMPLETE,
    )
    when = datetime.datetime(2026, 11, 30, 12, 46, 15, 298278, tzinfo=datetime.UTC)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=when)
    rows = conversations_export_rows(Conversation.objects.filter(pk=conversation.pk))
    assert rows[0]["updated_at"] == "2026-11-30T12:46:15.298278+00:00"
    assert rows[0]["messages"][1]["status"] == "incomplete"
    with translation.override("ru"):
        markdown = conversations_to_markdown(rows)
    assert "- Изменён: 30 ноября 2026 г. 12:46" in markdown
    assert "[неполный]" in markdown
    assert "incomplete" not in markdown and "2026-11-30T" not in markdown
