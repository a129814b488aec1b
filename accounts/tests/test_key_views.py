"""The API keys page (accounts.key_views): list, create (the key shown once), revoke."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_authenticate, api_key_create

pytestmark = pytest.mark.django_db

KEYS = "/accounts/keys/"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def client_alice(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def shown_key(html: str) -> str:
    """The new key in the page's read-only field, or ""."""
    match = re.search(r'id="new-key"[^>]*value="(cai_[^"]+)"', html)
    return match[1] if match else ""


def create(client: Client, name: str = "laptop", days: str = "") -> str:
    response = client.post(KEYS, {"name": name, "expires_in_days": days})
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_is_at_accounts_keys() -> None:
    assert reverse("api_keys") == KEYS


def test_anonymous_visitors_are_sent_to_sign_in(client: Client) -> None:
    response = client.get(KEYS)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert client.post(KEYS, {"name": "x"}).status_code == 302
    assert ApiKey.objects.count() == 0


def test_anonymous_visitors_cannot_revoke(client: Client, alice: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    response = client.post(reverse("api_key_revoke", args=[key.pk]))
    assert response.status_code == 302
    assert api_key_authenticate(raw) is not None


def test_the_page_lists_only_ones_own_keys(client_alice: Client, alice: User, bob: User) -> None:
    mine, _ = api_key_create(user=alice, name="alice-laptop")
    theirs, _ = api_key_create(user=bob, name="bob-server")
    html = client_alice.get(KEYS).content.decode()
    assert "alice-laptop" in html and mine.prefix in html
    assert "bob-server" not in html and theirs.prefix not in html


def test_the_list_shows_each_keys_state(client_alice: Client, alice: User) -> None:
    api_key_create(user=alice, name="k-active")
    api_key_create(user=alice, name="k-old", expires_at=timezone.now() - timedelta(days=1))
    revoked, _ = api_key_create(user=alice, name="k-gone")
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    html = client_alice.get(KEYS).content.decode()
    rows = re.findall(r'<tr class="key-row is-(\w+)">\s*<th[^>]*>([^<]+)</th>', html)
    assert sorted(rows) == [("active", "k-active"), ("expired", "k-old"), ("revoked", "k-gone")]
    # Only the active key can be revoked.
    assert html.count("/revoke/") == 1


def test_creating_shows_the_key_once(client_alice: Client, alice: User) -> None:
    html = create(client_alice)
    raw = shown_key(html)
    assert raw
    assert "will not be shown again" in html
    assert api_key_authenticate(raw).user == alice
    assert raw not in client_alice.get(KEYS).content.decode()


def test_the_answer_holding_the_key_is_not_cached(client_alice: Client) -> None:
    response = client_alice.post(KEYS, {"name": "laptop"})
    assert "no-store" in response["Cache-Control"]


def test_the_key_is_not_kept_in_the_session(client_alice: Client) -> None:
    raw = shown_key(create(client_alice))
    assert raw not in str(dict(client_alice.session.items()))


def test_creating_stores_the_name_and_expiry(client_alice: Client, alice: User) -> None:
    before = timezone.now()
    create(client_alice, name="CI", days="30")
    key = ApiKey.objects.get(user=alice)
    assert key.name == "CI"
    assert before + timedelta(days=30) <= key.expires_at <= timezone.now() + timedelta(days=30)


def test_a_key_without_expiry_never_expires(client_alice: Client, alice: User) -> None:
    create(client_alice, name="forever")
    assert ApiKey.objects.get(user=alice).expires_at is None


@pytest.mark.parametrize(
    ("name", "days"),
    [("", ""), ("   ", ""), ("x", "0"), ("x", "-3"), ("x", "abc"), ("x" * 101, "")],
)
def test_invalid_input_creates_nothing(client_alice: Client, name: str, days: str) -> None:
    response = client_alice.post(KEYS, {"name": name, "expires_in_days": days})
    assert response.status_code == 400
    assert 'class="field-errors"' in response.content.decode()
    assert not shown_key(response.content.decode())
    assert ApiKey.objects.count() == 0


def test_the_owner_revokes_a_key(client_alice: Client, alice: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    response = client_alice.post(reverse("api_key_revoke", args=[key.pk]), follow=True)
    assert response.redirect_chain == [(KEYS, 302)]
    assert "was revoked" in response.content.decode()
    assert api_key_authenticate(raw) is None


def test_revoking_someone_elses_key_is_a_404(client_alice: Client, bob: User) -> None:
    key, raw = api_key_create(user=bob, name="bob-server")
    response = client_alice.post(reverse("api_key_revoke", args=[key.pk]))
    assert response.status_code == 404
    assert api_key_authenticate(raw) is not None


def test_staff_may_revoke_anyones_key_here_too(bob: User) -> None:
    key, raw = api_key_create(user=bob, name="bob-server")
    staff = Client()
    staff.force_login(User.objects.create_user("sam", is_staff=True))
    assert staff.post(reverse("api_key_revoke", args=[key.pk])).status_code == 302
    assert api_key_authenticate(raw) is None


def test_revoking_a_missing_key_is_a_404(client_alice: Client) -> None:
    assert client_alice.post(reverse("api_key_revoke", args=[999])).status_code == 404


def test_revoke_needs_post(client_alice: Client, alice: User) -> None:
    key, raw = api_key_create(user=alice, name="laptop")
    assert client_alice.get(reverse("api_key_revoke", args=[key.pk])).status_code == 405
    assert api_key_authenticate(raw) is not None


def test_the_page_has_no_inline_script(client_alice: Client) -> None:
    html = create(client_alice)
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert " onclick=" not in html and " style=" not in html


def test_the_chat_sidebar_links_to_the_keys_page(client_alice: Client) -> None:
    html = client_alice.get(reverse("chat:index")).content.decode()
    assert f'href="{KEYS}"' in html
