"""The sidebar's search results (issue 9): the matching passage with the match
highlighted, links that keep the search, and a conversation opened at its match."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def client_for(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def thread(owner: User, title: str, texts: list[str]) -> Conversation:
    conv = Conversation.objects.create(owner=owner, title=title, provider="fake", model="m")
    for i, text in enumerate(texts):
        Message.objects.create(
            conversation=conv, role="user" if i % 2 == 0 else "assistant", content=text
        )
    return conv


def test_a_result_shows_the_matching_passage_with_the_match_marked(
    client_for: Client, alice: User
) -> None:
    conv = thread(alice, "Trip", ["Where to go?", "The capital of France is Paris, lovely."])
    html = client_for.get(reverse("chat:index"), {"q": "PARIS"}).content.decode()
    assert re.search(r"France is <mark>Paris</mark>, lovely\.", html)
    hit = conv.messages.get(role="assistant").pk
    assert f'href="/c/{conv.pk}/?q=PARIS&amp;hit={hit}"' in html


def test_a_title_match_is_marked_and_its_link_keeps_the_search(
    client_for: Client, alice: User
) -> None:
    conv = thread(alice, "Привет мир", ["hello"])
    html = client_for.get(reverse("chat:index"), {"q": "мир"}).content.decode()
    assert "Привет <mark>мир</mark>" in html
    assert f'href="/c/{conv.pk}/?q=%D0%BC%D0%B8%D1%80"' in html
    page = client_for.get(f"/c/{conv.pk}/", {"q": "мир"}).content.decode()
    assert 'value="мир"' in page  # the search stays while stepping through results


def test_search_results_cost_a_constant_number_of_queries(client_for: Client, alice: User) -> None:
    def queries() -> int:
        client_for.get(reverse("chat:index"), {"q": "needle"})  # warm: what the site caches
        with CaptureQueriesContext(connection) as ctx:
            assert client_for.get(reverse("chat:index"), {"q": "needle"}).status_code == 200
        return len(ctx.captured_queries)

    thread(alice, "one", ["a needle here"])
    few = queries()
    for i in range(20):
        thread(alice, f"t{i}", ["hay", f"needle {i}", "more hay"])
    assert queries() == few


def test_a_result_deep_in_a_long_thread_opens_the_page_that_holds_it(
    client_for: Client, alice: User
) -> None:
    texts = ["the rare word zanzibar"] + [f"filler {i}" for i in range(120)]
    conv = thread(alice, "Long", texts)
    hit = conv.messages.get(content__contains="zanzibar").pk
    html = client_for.get(f"/c/{conv.pk}/", {"q": "zanzibar", "hit": hit}).content.decode()
    assert f'data-message-id="{hit}"' in html
    assert "Show the latest messages" in html
    # Without the hit the newest page does not hold it.
    html = client_for.get(f"/c/{conv.pk}/").content.decode()
    assert f'data-message-id="{hit}"' not in html


def test_another_users_message_id_as_hit_is_ignored(client_for: Client, alice: User) -> None:
    bob = User.objects.create_user("bob", password="pw-bob-12345")
    theirs = thread(bob, "Bob", ["bob's secret"])
    mine = thread(alice, "Mine", ["hello"])
    secret = theirs.messages.get().pk
    html = client_for.get(f"/c/{mine.pk}/", {"hit": secret}).content.decode()
    assert "bob&#x27;s secret" not in html and "bob's secret" not in html
