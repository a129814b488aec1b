"""The chat page: what it shows, paginated threads and sidebar, and a query count that
does not grow with the history."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chat.models import Conversation, Message
from chat.views import SIDEBAR_LIMIT, THREAD_PAGE

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw")


@pytest.fixture
def client_for(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def make_thread(owner: User, count: int, title: str = "Long") -> Conversation:
    conv = Conversation.objects.create(owner=owner, title=title, provider="local", model="m")
    start = timezone.now() - timedelta(days=1)
    Message.objects.bulk_create(
        Message(
            conversation=conv,
            role="user" if i % 2 == 0 else "assistant",
            content=f"message number {i}",
            content_html=f"<p>message number {i}</p>" if i % 2 else "",
            provider="local" if i % 2 else "",
            model="m" if i % 2 else "",
            created_at=start + timedelta(seconds=i),
        )
        for i in range(count)
    )
    return conv


def make_conversations(owner: User, count: int) -> None:
    now = timezone.now()
    Conversation.objects.bulk_create(
        Conversation(
            owner=owner,
            title=f"Chat {i:04d}",
            provider="local",
            model="m",
            updated_at=now - timedelta(minutes=i),
        )
        for i in range(count)
    )


def shown_numbers(html: str) -> list[int]:
    return [int(n) for n in re.findall(r"message number (\d+)</", html)]


def test_page_shows_the_newest_messages_of_a_long_thread(client_for: Client, alice: User) -> None:
    conv = make_thread(alice, THREAD_PAGE + 30)
    html = client_for.get(reverse("chat:conversation", args=[conv.pk])).content.decode()
    numbers = sorted(set(shown_numbers(html)))
    assert numbers == list(range(30, THREAD_PAGE + 30))
    assert "Show earlier messages" in html


def test_earlier_messages_come_page_by_page(client_for: Client, alice: User) -> None:
    conv = make_thread(alice, THREAD_PAGE * 2 + 10)
    html = client_for.get(reverse("chat:conversation", args=[conv.pk])).content.decode()
    url = re.search(r'data-fragment-url="([^"]+)"', html).group(1).replace("&amp;", "&")
    middle = client_for.get(url).content.decode()
    assert sorted(set(shown_numbers(middle))) == list(range(10, THREAD_PAGE + 10))
    url = re.search(r'data-fragment-url="([^"]+)"', middle).group(1)
    top = client_for.get(url).content.decode()
    assert sorted(set(shown_numbers(top))) == list(range(0, 10))
    assert "data-load-earlier" not in top


def test_a_short_thread_has_no_earlier_link(client_for: Client, alice: User) -> None:
    conv = make_thread(alice, 4)
    html = client_for.get(reverse("chat:conversation", args=[conv.pk])).content.decode()
    assert sorted(set(shown_numbers(html))) == [0, 1, 2, 3]
    assert "data-load-earlier" not in html


@pytest.mark.parametrize("before", ["abc", "-1", "0", "99999999"])
def test_bad_before_parameter_is_404(client_for: Client, alice: User, before: str) -> None:
    conv = make_thread(alice, 4)
    response = client_for.get(reverse("chat:conversation", args=[conv.pk]), {"before": before})
    assert response.status_code == 404


def test_earlier_messages_of_another_users_thread_are_404(alice: User) -> None:
    conv = make_thread(alice, THREAD_PAGE + 5)
    bob = User.objects.create_user("bob", password="pw")
    client = Client()
    client.force_login(bob)
    response = client.get(
        reverse("chat:messages", args=[conv.pk]), {"before": conv.messages.last().pk}
    )
    assert response.status_code == 404


def test_sidebar_pages_through_older_conversations(client_for: Client, alice: User) -> None:
    make_conversations(alice, SIDEBAR_LIMIT + 20)
    html = client_for.get(reverse("chat:index")).content.decode()
    titles = re.findall(r'data-title="(Chat \d+)"', html)
    assert titles[0] == "Chat 0000" and len(titles) == SIDEBAR_LIMIT
    older = re.search(r'href="([^"]*older_than=\d+)"', html).group(1).replace("&amp;", "&")
    html = client_for.get(older).content.decode()
    titles = re.findall(r'data-title="(Chat \d+)"', html)
    assert titles == [f"Chat {i:04d}" for i in range(SIDEBAR_LIMIT, SIDEBAR_LIMIT + 20)]


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_chat_page_query_count_is_constant_and_small(client_for: Client, alice: User) -> None:
    small = make_thread(alice, 4, title="small")
    make_conversations(alice, 3)
    few = queries_for(client_for, reverse("chat:conversation", args=[small.pk]))
    big = make_thread(alice, 400, title="big")
    make_conversations(alice, 300)
    many = queries_for(client_for, reverse("chat:conversation", args=[big.pk]))
    assert many == few
    assert many <= 8


def test_index_query_count_is_constant(client_for: Client, alice: User) -> None:
    make_conversations(alice, 3)
    few = queries_for(client_for, reverse("chat:index"))
    make_conversations(alice, 300)
    assert queries_for(client_for, reverse("chat:index")) == few


def test_a_short_search_says_it_looked_at_titles_only(client_for: Client, alice: User) -> None:
    html = client_for.get(reverse("chat:index"), {"q": "go"}).content.decode()
    assert "Titles only" in html
    html = client_for.get(reverse("chat:index"), {"q": "golang"}).content.decode()
    assert "Titles only" not in html
