"""Security: the Content-Security-Policy on every kind of page, the reply rate limit,
production settings. (The sign-in lockout: accounts/tests/test_lockout.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client
from django.urls import URLPattern, URLResolver, get_resolver, path, reverse

import chat_ai.urls
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    cache.clear()


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


# --- Content-Security-Policy on every page ----------------------------------------------


def assert_strict_csp(response: HttpResponse) -> None:
    """The policy forbids inline and foreign script and framing by other sites."""
    policy = response.headers.get("Content-Security-Policy", "")
    directives = dict(part.strip().partition(" ")[::2] for part in policy.split(";"))
    assert directives.get("script-src") == "'self'", policy
    assert directives.get("frame-ancestors") == "'none'", policy
    assert directives.get("object-src") == "'none'", policy


def raise_an_error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


# This module is also a URL conf (for the 500 page): the app's, plus a view that fails.
urlpatterns = [path("test-500/", raise_an_error), *chat_ai.urls.urlpatterns]

OBJECT_ID = 4242  # the conversation and the message every route with an id is given
# A value for each URL parameter of the app. A route with a parameter not listed here
# fails the sweep below: add a value that reaches the page.
ROUTE_VALUES: dict[str, object] = {
    "pk": OBJECT_ID,
    "object_id": str(OBJECT_ID),
    "id": str(OBJECT_ID),
    "content_type_id": "1",
    "app_label": "chat",
    "token": "no-such-token",  # a share link (sharing)
    "run": "-12345",  # a temporary chat's run (chat:temporary_stop)
}


def _routes(patterns: list[Any], namespace: str = "") -> list[tuple[str, list[str]]]:
    """Every named route of the URL conf with the names of its parameters."""
    routes = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            params = list(entry.pattern.regex.groupindex)
            routes += [(name, params + more) for name, more in _routes(entry.url_patterns, inner)]
        elif isinstance(entry, URLPattern) and entry.name:
            routes.append((f"{namespace}{entry.name}", list(entry.pattern.regex.groupindex)))
    return routes


def _sweep() -> list[Any]:
    cases = []
    for name, params in sorted(set((n, tuple(p)) for n, p in _routes(get_resolver().url_patterns))):
        methods = ["GET"] if name.startswith("admin:") else ["GET", "POST"]
        for method in methods:
            for signed_in in (True, False):
                if method == "POST" and not signed_in:
                    continue
                who = "signed-in" if signed_in else "anonymous"
                cases.append(
                    pytest.param(name, list(params), method, signed_in, id=f"{method}-{name}-{who}")
                )
    return cases


@pytest.mark.parametrize(("name", "params", "method", "signed_in"), _sweep())
async def test_every_route_answers_with_the_strict_csp(
    name: str, params: list[str], method: str, signed_in: bool, fake_provider: type
) -> None:
    """Every route of the URL conf (chat pages, the thread fragment, JSON endpoints, the
    reply stream, sign-in and sign-up, every admin page), whatever it answers (200,
    a redirect, 404, 405): the header is added once for all, not per view."""
    missing = [p for p in params if p not in ROUTE_VALUES]
    assert not missing, f"{name}: add a value for {missing} to ROUTE_VALUES"
    url = reverse(name, kwargs={p: ROUTE_VALUES[p] for p in params})
    staff = await User.objects.acreate_superuser("staff", "staff@example.com", "pw-staff-123")
    conversation = await Conversation.objects.acreate(
        pk=OBJECT_ID, owner=staff, title="Plans", provider="fake", model="fake-small"
    )
    await Message.objects.acreate(
        pk=OBJECT_ID, conversation=conversation, role="user", content="hello"
    )
    client = AsyncClient()
    if signed_in:
        await client.aforce_login(staff)
    if method == "GET":
        response = await client.get(url)
    else:
        response = await client.post(url, {"content": "hi", "title": "New title"})
    if response.streaming:
        _ = [chunk async for chunk in response.streaming_content]
    assert response.status_code < 500
    assert_strict_csp(response)


def test_the_reply_stream_carries_the_csp(alice: User, fake_provider: type) -> None:
    """The sweep above reaches the stream too; this names it: an SSE response."""
    conversation = Conversation.objects.create(owner=alice, provider="fake", model="fake-small")
    client = Client()
    client.force_login(alice)
    response = client.post(reverse("chat:reply", args=[conversation.pk]), {"content": "hi"})
    assert response["Content-Type"].startswith("text/event-stream")
    assert_strict_csp(response)
    response.close()


def test_the_404_page_carries_the_csp(client: Client) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert_strict_csp(response)


@pytest.mark.urls(__name__)
def test_the_500_page_carries_the_csp() -> None:
    response = Client(raise_request_exception=False).get("/test-500/")
    assert response.status_code == 500
    assert_strict_csp(response)


def test_the_admin_allows_inline_style_but_not_inline_script(client: Client) -> None:
    policy = client.get("/admin/login/")["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "script-src 'self';" in policy


# --- the reply rate limit ---------------------------------------------------------------


async def test_sending_too_fast_is_refused_with_a_clear_message(
    alice: User, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_RATE_LIMIT_MESSAGES = 2
    settings.CHAT_RATE_LIMIT_WINDOW = 60
    conversation = await Conversation.objects.acreate(
        owner=alice, provider="fake", model="fake-small"
    )
    client = AsyncClient()
    await client.aforce_login(alice)
    url = reverse("chat:reply", args=[conversation.pk])
    for i in range(2):
        response = await client.post(url, {"content": f"m{i}"})
        assert response.status_code == 200
        _ = [c async for c in response.streaming_content]
    response = await client.post(url, {"content": "one too many"})
    assert response.status_code == 429
    assert "too fast" in response.json()["error"]
    assert int(response["Retry-After"]) > 0
    assert not await Message.objects.filter(content="one too many").aexists()


async def test_rate_limit_is_per_user(alice: User, fake_provider: type, settings: Any) -> None:
    settings.CHAT_RATE_LIMIT_MESSAGES = 1
    bob = await User.objects.acreate_user("bob", password="pw-bob-123")
    for user in (alice, bob):
        conversation = await Conversation.objects.acreate(
            owner=user, provider="fake", model="fake-small"
        )
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.post(
            reverse("chat:reply", args=[conversation.pk]), {"content": "hi"}
        )
        assert response.status_code == 200
        _ = [c async for c in response.streaming_content]


# --- production settings ----------------------------------------------------------------


def test_deploy_check_passes_with_production_settings(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "a-long-random-production-secret-key-" + "x7Qz" * 10,
        "ALLOWED_HOSTS": "chat.example.com",
        "SQLITE_PATH": str(tmp_path / "deploy.sqlite3"),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_the_development_secret_key(tmp_path: Path) -> None:
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": "", "ALLOWED_HOSTS": "x"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
