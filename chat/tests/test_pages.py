"""The chat page: what it shows, paginated threads and sidebar, and a query count that
does not grow with the history. The error pages: the site's own 404 and 500, also from
the server `make run` starts."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse
from django.utils import timezone
from django.views.defaults import server_error

import chat_ai.urls
from chat.models import Conversation, Message
from chat.services import messages_chain
from chat.tests.live import free_port, wait_for_port
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
    messages_chain(conversation_ids=[conv.pk])
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
    """Queries of ``GET url`` once warm (the first request fills what the site caches,
    such as whether any model access rules exist)."""
    client.get(url)
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


# --- error pages ------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
# What Django's technical pages show and the site's own pages never do.
TECHNICAL_MARKERS = ("URLconf", "Using the URLconf", "c/<int:pk>/", "Traceback", "DEBUG = True")


def raise_an_error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


# This module is also a URL conf (for the 500 page): the app's, plus a view that fails.
urlpatterns = [path("test-500/", raise_an_error), *chat_ai.urls.urlpatterns]


def assert_site_page(html: str, heading: str) -> None:
    """The site's own layout, a plain heading, a way back home, nothing technical."""
    assert 'href="/static/chat/chat.css"' in html
    assert f"<h1>{heading}</h1>" in html
    assert 'href="/"' in html
    assert not [marker for marker in TECHNICAL_MARKERS if marker in html]


def test_an_unknown_address_shows_the_sites_404_page(client_for: Client) -> None:
    response = client_for.get("/no/such/page/")
    assert response.status_code == 404
    assert_site_page(response.content.decode(), "Page not found")


@pytest.mark.urls(__name__)
def test_a_view_that_fails_shows_the_sites_500_page() -> None:
    response = Client(raise_request_exception=False).get("/test-500/")
    assert response.status_code == 500
    assert_site_page(response.content.decode(), "Something went wrong")


def test_the_500_page_needs_no_database(django_assert_num_queries: object) -> None:
    """Django renders 500.html with no context and no request: it must not need the
    user, the session or any query (the failure may be the database itself)."""
    with django_assert_num_queries(0):  # type: ignore[operator]
        response = server_error(RequestFactory().get("/"))
    assert_site_page(response.content.decode(), "Something went wrong")


def make_run_command(port: int) -> list[str]:
    """The server command of the Makefile's ``run`` target, read from the Makefile."""
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "no run target in the Makefile"
    line = next(line for line in recipe.group(1).splitlines() if "uvicorn" in line)
    line = line.strip().replace("$(HOST)", "127.0.0.1").replace("$(PORT)", str(port))
    words = shlex.split(line)
    assert words[0] == "$(VENV)/bin/uvicorn", line
    return [sys.executable, "-m", "uvicorn", *words[1:]]


@pytest.fixture(scope="module")
def make_run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served as `make run` serves it, with nothing set: no DEBUG, no
    ALLOWED_HOSTS, no SECRET_KEY (empty values also hide those of a developer's .env)."""
    workdir = tmp_path_factory.mktemp("make-run")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DEBUG="",
        ALLOWED_HOSTS="",
        SECRET_KEY="",
        DATABASE_URL="",
        REDIS_URL="",
        SQLITE_PATH=str(workdir / "db.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)  # as `make run`: chat_ai.asgi picks its own
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "chat_ai.settings"},
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            make_run_command(port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            try:
                wait_for_port(port, process, timeout=30)
            except RuntimeError as e:
                pytest.fail(f"{e}\n{log.read_text(errors='replace')}")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def fetch(url: str, host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_make_run_shows_the_sites_404_page_not_djangos(make_run_server: str) -> None:
    status, html = fetch(f"{make_run_server}/no/such/page/")
    assert status == 404
    assert_site_page(html, "Page not found")


def test_make_run_serves_the_static_files(make_run_server: str) -> None:
    status, css = fetch(f"{make_run_server}/static/chat/chat.css")
    assert status == 200
    assert ".auth-card" in css


def test_make_run_answers_to_loopback_names_only(make_run_server: str) -> None:
    assert fetch(f"{make_run_server}/accounts/login/", host="localhost")[0] == 200
    assert fetch(f"{make_run_server}/accounts/login/", host="chat.example.com")[0] == 400
