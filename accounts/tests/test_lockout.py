"""The sign-in lockout (django-axes, accounts.lockout): repeated wrong passwords pause
one account from one address, and nothing else.

The addresses are documentation ranges (RFC 5737): Django's test client only puts them
in REMOTE_ADDR, nothing connects to them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.db.models import F
from django.http import HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from django.urls import reverse

from accounts.lockout import client_address

pytestmark = pytest.mark.django_db

OFFICE = "198.51.100.7"  # one address shared by a whole office (NAT)
HOME = "203.0.113.20"
PROXY = "192.0.2.1"
ALICE_PASSWORD = "pw-alice-123"
BOB_PASSWORD = "pw-bob-123"


@pytest.fixture(autouse=True)
def _limits(settings: Any) -> None:
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_LOCKOUT_SECONDS = 300
    settings.TRUSTED_PROXY_HEADER = ""
    settings.TRUSTED_PROXY_COUNT = 1


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password=ALICE_PASSWORD, is_staff=True)


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password=BOB_PASSWORD)


def sign_in(
    username: str, password: str, address: str = OFFICE, url: str = "", **headers: str
) -> tuple[HttpResponse, Client]:
    """One sign-in from a fresh browser at ``address``."""
    client = Client()
    response = client.post(
        url or reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
        headers=headers,
    )
    return response, client


def signed_in_as(client: Client, user: User) -> bool:
    return client.session.get("_auth_user_id") == str(user.pk)


def fail_until_paused(username: str, address: str = OFFICE, **headers: str) -> HttpResponse:
    """LOGIN_MAX_FAILURES wrong passwords; returns the last answer."""
    responses = [sign_in(username, "wrong", address, **headers)[0] for _ in range(3)]
    assert [r.status_code for r in responses[:-1]] == [200, 200]
    return responses[-1]


def pass_time(seconds: float) -> None:
    """As if ``seconds`` had gone by since every recorded failure."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(seconds=seconds))


def test_the_right_password_is_refused_once_the_account_is_paused_at_that_address(
    alice: User,
) -> None:
    fail_until_paused("alice")
    response, client = sign_in("alice", ALICE_PASSWORD)
    assert response.status_code == 429
    assert not signed_in_as(client, alice)


def test_the_paused_page_says_when_to_try_again(alice: User) -> None:
    response = fail_until_paused("alice")
    assert response.status_code == 429
    assert 295 <= int(response["Retry-After"]) <= 300
    html = response.content.decode()
    assert "Too many failed sign-in attempts. Try again in 5 minutes." in html
    assert 'class="auth-card"' in html  # the site's own page, not a bare text response


def test_another_account_from_the_same_address_still_signs_in(alice: User, bob: User) -> None:
    fail_until_paused("alice", OFFICE)
    response, client = sign_in("bob", BOB_PASSWORD, OFFICE)
    assert response.status_code == 302
    assert signed_in_as(client, bob)


def test_the_same_account_from_another_address_still_signs_in(alice: User) -> None:
    fail_until_paused("alice", OFFICE)
    response, client = sign_in("alice", ALICE_PASSWORD, HOME)
    assert response.status_code == 302
    assert signed_in_as(client, alice)


def test_failures_below_the_limit_do_not_pause(alice: User) -> None:
    for _ in range(2):
        sign_in("alice", "wrong")
    response, client = sign_in("alice", ALICE_PASSWORD)
    assert response.status_code == 302
    assert signed_in_as(client, alice)


def test_the_right_password_after_the_pause_signs_in(alice: User) -> None:
    fail_until_paused("alice")
    pass_time(301)
    response, client = sign_in("alice", ALICE_PASSWORD)
    assert response.status_code == 302
    assert signed_in_as(client, alice)


def test_wrong_passwords_during_the_pause_do_not_make_it_longer(alice: User) -> None:
    fail_until_paused("alice")
    pass_time(200)
    assert sign_in("alice", "wrong again")[0].status_code == 429
    pass_time(101)  # 301 seconds after the pause began, 101 after the last try
    _, client = sign_in("alice", ALICE_PASSWORD)
    assert signed_in_as(client, alice)


def test_a_success_clears_the_failures_before_it(alice: User) -> None:
    for _ in range(2):
        sign_in("alice", "wrong")
    assert sign_in("alice", ALICE_PASSWORD)[0].status_code == 302
    for _ in range(2):
        sign_in("alice", "wrong")
    _, client = sign_in("alice", ALICE_PASSWORD)
    assert signed_in_as(client, alice)


def test_the_admin_sign_in_is_paused_too(alice: User) -> None:
    admin_login = reverse("admin:login")
    for _ in range(3):
        response = sign_in("alice", "wrong", url=admin_login)[0]
    assert response.status_code == 429
    response, client = sign_in("alice", ALICE_PASSWORD, url=admin_login)
    assert response.status_code == 429
    assert not signed_in_as(client, alice)


@pytest.mark.django_db(transaction=True)
async def test_the_pause_holds_under_asgi(alice: User) -> None:
    """uvicorn runs the middleware chain asynchronously (axes' async branch)."""
    client = AsyncClient()
    url = reverse("login")
    for _ in range(3):
        response = await client.post(url, {"username": "alice", "password": "wrong"})
    response = await client.post(url, {"username": "alice", "password": ALICE_PASSWORD})
    assert response.status_code == 429
    assert "Try again in 5 minutes" in response.content.decode()


# --- which address counts ---------------------------------------------------------------


def test_a_forwarded_for_header_does_not_count_unless_trusted(alice: User) -> None:
    """By default a client cannot dodge the pause by writing another address in
    X-Forwarded-For."""
    fail_until_paused("alice", OFFICE, **{"X-Forwarded-For": "10.1.1.1"})
    response, _ = sign_in("alice", ALICE_PASSWORD, OFFICE, **{"X-Forwarded-For": "10.2.2.2"})
    assert response.status_code == 429


def test_a_trusted_proxy_header_tells_the_clients_apart(alice: User, settings: Any) -> None:
    """Behind a proxy every request comes from the proxy's address: with the header
    trusted, one client's pause does not stop another client of the same proxy."""
    settings.TRUSTED_PROXY_HEADER = "X-Forwarded-For"
    fail_until_paused("alice", PROXY, **{"X-Forwarded-For": OFFICE})
    paused, _ = sign_in("alice", ALICE_PASSWORD, PROXY, **{"X-Forwarded-For": OFFICE})
    _, client = sign_in("alice", ALICE_PASSWORD, PROXY, **{"X-Forwarded-For": HOME})
    assert paused.status_code == 429
    assert signed_in_as(client, alice)


@pytest.mark.parametrize(
    ("header", "count", "sent", "expected"),
    [
        ("", 1, {"HTTP_X_FORWARDED_FOR": "10.1.1.1"}, PROXY),
        ("X-Forwarded-For", 1, {"HTTP_X_FORWARDED_FOR": f"10.1.1.1, {HOME}"}, HOME),
        ("X-Forwarded-For", 2, {"HTTP_X_FORWARDED_FOR": f"10.1.1.1, {HOME}, {OFFICE}"}, HOME),
        ("X-Forwarded-For", 2, {"HTTP_X_FORWARDED_FOR": HOME}, PROXY),  # too few entries
        ("X-Forwarded-For", 1, {"HTTP_X_FORWARDED_FOR": "not-an-address"}, PROXY),
        ("X-Forwarded-For", 1, {}, PROXY),  # a request that did not pass the proxy
        ("X-Real-IP", 1, {"HTTP_X_REAL_IP": HOME, "HTTP_X_FORWARDED_FOR": OFFICE}, HOME),
        ("X-Real-IP", 1, {"HTTP_X_REAL_IP": "2001:db8::5"}, "2001:db8::5"),
    ],
)
def test_client_address(
    settings: Any, header: str, count: int, sent: dict[str, str], expected: str
) -> None:
    settings.TRUSTED_PROXY_HEADER = header
    settings.TRUSTED_PROXY_COUNT = count
    request = RequestFactory().get("/", REMOTE_ADDR=PROXY, **sent)
    assert client_address(request) == expected
