"""Reads scoped to the owner, and search over titles and message text (indexed per
database: FTS5 trigram on SQLite, pg_trgm on PostgreSQL)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from chat import selectors
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw")


def conversation_with(owner: User, title: str, *texts: str) -> Conversation:
    conv = Conversation.objects.create(owner=owner, title=title, provider="local", model="m")
    for i, text in enumerate(texts):
        Message.objects.create(
            conversation=conv, role="user" if i % 2 == 0 else "assistant", content=text
        )
    return conv


def search(user: User, query: str) -> list[str]:
    return [c.title for c in selectors.conversation_list_for_user(user=user, query=query)]


def test_list_is_newest_first(alice: User) -> None:
    conversation_with(alice, "older")
    conversation_with(alice, "newer")
    assert search(alice, "") == ["newer", "older"]


def test_search_matches_titles(alice: User) -> None:
    conversation_with(alice, "Trip to Lisbon")
    conversation_with(alice, "Tax return")
    assert search(alice, "lisbon") == ["Trip to Lisbon"]


def test_search_matches_a_substring_of_message_text(alice: User) -> None:
    conversation_with(alice, "A", "How do I parse JSON in Rust?", "Use serde_json.")
    conversation_with(alice, "B", "Weather tomorrow?")
    assert search(alice, "SERDE_js") == ["A"]


def test_search_is_case_insensitive_for_cyrillic(alice: User) -> None:
    conversation_with(alice, "Рецепт", "Как приготовить Борщ?")
    assert search(alice, "борщ") == ["Рецепт"]


def test_a_short_query_searches_titles_only(alice: User) -> None:
    conversation_with(alice, "Go tips", "python")
    conversation_with(alice, "B", "go or rust")
    assert search(alice, "go") == ["Go tips"]


def test_search_with_quotes_and_operators_is_literal(alice: User) -> None:
    conversation_with(alice, "A", 'he said "NEAR AND OR" loudly')
    conversation_with(alice, "B", "nothing here")
    assert search(alice, '"NEAR AND') == ["A"]
    assert search(alice, "* OR -") == []


def test_search_never_returns_other_users_conversations(alice: User) -> None:
    bob = User.objects.create_user("bob", password="pw")
    conversation_with(bob, "Bob's secret", "the password is swordfish")
    assert search(alice, "swordfish") == []
    assert search(bob, "swordfish") == ["Bob's secret"]


def test_search_sees_edited_and_not_deleted_messages(alice: User) -> None:
    conv = conversation_with(alice, "A", "original words")
    message = conv.messages.get()
    message.content = "rewritten sentence"
    message.save()
    assert search(alice, "rewritten") == ["A"]
    assert search(alice, "original") == []
    message.delete()
    assert search(alice, "rewritten") == []


def test_search_lists_a_conversation_once(alice: User) -> None:
    conversation_with(alice, "A", "apple pie", "apple tart", "apple juice")
    assert search(alice, "apple") == ["A"]
