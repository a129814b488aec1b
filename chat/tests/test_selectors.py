"""Reads scoped to the owner, and search over titles and message text (indexed per
database: FTS5 trigram on SQLite, pg_trgm on PostgreSQL)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection

from chat import search as chat_search
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


# --- Search in every script (issue 8): one fold, chat.search.fold, on both databases ------

# (stored text, query): the query must find the text, as a title and as message text.
FOLDED_MATCHES = [
    pytest.param("Привет мир", "привет", id="cyrillic-lower"),
    pytest.param("Привет мир", "ПРИВЕТ", id="cyrillic-upper"),
    pytest.param("привет мир", "ПрИвЕт МиР", id="cyrillic-mixed"),
    pytest.param("Ёжик в тумане", "ежик", id="yo-as-ye"),
    pytest.param("Ежик в тумане", "ЁЖИК", id="ye-found-by-yo"),
    pytest.param("Е\u0308жик в тумане", "ежик", id="decomposed-yo"),
    pytest.param("ΣΊΣΥΦΟΣ", "σίσυφος", id="greek-final-sigma"),
    pytest.param("Straße", "STRASSE", id="german-sharp-s"),
    pytest.param("ÉCOLE D'ÉTÉ", "école d'été", id="accented-latin"),
    pytest.param("İstanbul", "i\u0307stanbul", id="turkish-dotted-capital-i"),
    pytest.param("KIRMIZI", "kirmizi", id="latin-capital-i"),
]
# (stored text, query): Unicode casefold keeps these apart, so search does too.
FOLDED_MISSES = [
    pytest.param("Istanbul", "ıstanbul", id="dotless-i-is-its-own-letter"),
    pytest.param("İstanbul", "istanbul", id="dotted-capital-i-keeps-its-dot"),
    pytest.param("Йод", "иод", id="short-i-is-not-i"),
]


@pytest.mark.parametrize(("text", "query"), FOLDED_MATCHES)
def test_search_finds_titles_in_any_case_and_script(alice: User, text: str, query: str) -> None:
    conversation_with(alice, text)
    conversation_with(alice, "Something else")
    assert search(alice, query) == [text]


@pytest.mark.parametrize(("text", "query"), FOLDED_MATCHES)
def test_search_finds_message_text_in_any_case_and_script(
    alice: User, text: str, query: str
) -> None:
    conversation_with(alice, "A", f"Вот: {text}, и всё.")
    conversation_with(alice, "B", "Something else entirely")
    assert search(alice, query) == ["A"]
    found = selectors.message_search_for_user(user=alice, query=query)
    assert [m.content for m in found] == [f"Вот: {text}, и всё."]


@pytest.mark.parametrize(("text", "query"), FOLDED_MISSES)
def test_search_keeps_apart_what_casefold_keeps_apart(alice: User, text: str, query: str) -> None:
    conversation_with(alice, text, f"{text} message")
    assert search(alice, query) == []


@pytest.mark.parametrize("query", ["пр", "ПР", "Ё", "ё"])
def test_a_short_query_finds_titles_in_any_case(alice: User, query: str) -> None:
    conversation_with(alice, "Привет, Ёлка")
    conversation_with(alice, "Hello", "про ёлку")  # short queries match titles only
    assert search(alice, query) == ["Привет, Ёлка"]


def test_short_cyrillic_query_reads_message_text_through_the_scan(alice: User) -> None:
    conversation_with(alice, "A", "Щука")
    conversation_with(alice, "B", "Окунь")
    assert [m.content for m in selectors.message_search_for_user(user=alice, query="щ")] == ["Щука"]


def test_search_follows_streaming_writes_and_renames(alice: User) -> None:
    """Replies are written with QuerySet.update() and bulk_update while streaming, and
    titles with update(): the database keeps the folded text in step with each."""
    conv = conversation_with(alice, "Черновик", "Первая версия")
    reply = Message.objects.create(conversation=conv, role="assistant", content="")
    Message.objects.filter(pk=reply.pk).update(content="Ответ про ЁЖИКА")
    assert search(alice, "ежика") == ["Черновик"]
    reply.content = "Ответ про Медведя"
    Message.objects.bulk_update([reply], ["content"])
    assert search(alice, "ежика") == []
    assert search(alice, "медвед") == ["Черновик"]
    Conversation.objects.filter(pk=conv.pk).update(title="Лесные Звери")
    assert search(alice, "звери") == ["Лесные Звери"]
    assert search(alice, "черновик") == []
    assert search(alice, "Ле") == ["Лесные Звери"]
    conv.delete()
    assert search(alice, "медвед") == []
    assert search(alice, "Ле") == []


def test_a_short_title_search_never_returns_other_users_conversations(alice: User) -> None:
    bob = User.objects.create_user("bob", password="pw")
    conversation_with(bob, "Ёлка Боба")
    assert search(alice, "ёл") == []
    assert search(bob, "ЕЛ") == ["Ёлка Боба"]


def test_existing_rows_are_searchable_once_search_is_installed(alice: User) -> None:
    """Migration 0004 runs install_search_objects on a database that already holds
    conversations: they are found afterwards, titles and messages alike."""
    chat_search.remove_search_objects(connection)
    conversation_with(alice, "Старый ЁЖИК", "Зелёная Ёлка")  # no triggers yet
    chat_search.install_search_objects(connection)
    assert search(alice, "ежик") == ["Старый ЁЖИК"]
    assert search(alice, "ЕЖ") == ["Старый ЁЖИК"]
    assert search(alice, "зеленая елка") == ["Старый ЁЖИК"]
    conversation_with(alice, "Новый", "Синяя ёлка")  # and the triggers are back
    assert search(alice, "ЕЛКА") == ["Новый", "Старый ЁЖИК"]


# --- The database's fold is chat.search.fold ------------------------------------------------


def _apply_plan(plan: chat_search.PostgresFoldPlan, lowered: dict[str, str], char: str) -> str:
    low = "".join(lowered.get(c, c) for c in plan.pre.get(char, char))
    return "".join(plan.post.get(c, c) for c in low)


@pytest.mark.parametrize(
    "locale",
    [
        pytest.param("ascii-only", id="lower-knows-ascii-only"),  # a database in the C locale
        pytest.param("turkish", id="lower-with-turkish-rules"),  # I -> ı, İ -> i (ICU tr)
    ],
)
def test_the_postgres_fold_plan_fits_any_lower(locale: str) -> None:
    """Whatever the database's lower() does, SQL built from the plan folds every
    character as chat.search.fold does, and text without a guard character needs only
    lower()."""
    changing = chat_search.case_changing_characters()
    lowered = {chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}
    if locale == "turkish":
        lowered |= {c: c.lower() for c in changing if len(c.lower()) == 1}
        lowered |= {"I": "ı", "İ": "i"}
    lowered = {k: v for k, v in lowered.items() if k != v}
    plan = chat_search.plan_postgres_fold(lowered)
    assert plan.unmatched == frozenset()
    # Any other character is left alone by lower(), fold() and the plan alike.
    for char in changing | set(lowered.values()) | set(plan.post) | {"a", "я", "\u0307"}:
        assert _apply_plan(plan, lowered, char) == chat_search.fold(char), f"U+{ord(char):04X}"
        if char not in plan.guard:
            assert lowered.get(char, char) == chat_search.fold(char), f"U+{ord(char):04X}"


on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's own chat_search_fold"
)


@pytest.mark.postgres
@on_postgres
def test_postgres_folds_every_character_like_python() -> None:
    with connection.cursor() as cursor:
        assert chat_search.postgres_fold_mismatches(cursor) == []


@pytest.mark.postgres
@on_postgres
def test_postgres_message_search_uses_the_trigram_index(alice: User) -> None:
    """The message search subquery can be answered from the trigram index (planned with
    sequential and plain index scans off, the index is the only way left)."""
    conversation_with(alice, "A", "Ёжик в тумане")
    _, subquery = chat_search.message_match("ЕЖИК").children[0]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + subquery.sql, subquery.params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Bitmap Index Scan on chat_message_search_trgm" in plan
    matching = selectors.message_search_for_user(user=alice, query="ЕЖИК")
    assert [m.content for m in matching] == ["Ёжик в тумане"]
