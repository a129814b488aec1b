"""The API keys' admin (accounts.admin): every key listed and revocable, the hash and the
key never shown, no "add"."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey
from accounts.services import api_key_authenticate, api_key_create

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:accounts_apikey_changelist"


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-root-123"))
    return client


@pytest.fixture
def keys() -> dict[str, tuple[ApiKey, str]]:
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    return {
        "alice": api_key_create(user=alice, name="alice-laptop"),
        "bob": api_key_create(user=bob, name="bob-ci"),
    }


def test_the_list_shows_everyones_keys(admin_client: Client, keys: dict) -> None:
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    for key, _ in keys.values():
        assert key.name in html and f"{key.prefix}…" in html
    assert "alice" in html and "bob" in html and "Active" in html


def test_search_by_user_name(admin_client: Client, keys: dict) -> None:
    html = admin_client.get(reverse(CHANGELIST), {"q": "bob"}).content.decode()
    assert "bob-ci" in html and "alice-laptop" not in html


def test_search_by_key_name(admin_client: Client, keys: dict) -> None:
    html = admin_client.get(reverse(CHANGELIST), {"q": "laptop"}).content.decode()
    assert "alice-laptop" in html and "bob-ci" not in html


def test_filter_by_state(admin_client: Client, keys: dict) -> None:
    ApiKey.objects.filter(pk=keys["bob"][0].pk).update(revoked_at="2026-01-01T00:00Z")
    html = admin_client.get(reverse(CHANGELIST), {"state": "revoked"}).content.decode()
    assert "bob-ci" in html and "alice-laptop" not in html


def test_the_action_revokes_the_selected_keys(admin_client: Client, keys: dict) -> None:
    (alice_key, alice_raw), bob_raw = keys["alice"], keys["bob"][1]
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [alice_key.pk]},
        follow=True,
    )
    assert "1 key revoked." in response.content.decode()
    assert api_key_authenticate(alice_raw) is None
    assert api_key_authenticate(bob_raw) is not None


def test_keys_cannot_be_added_in_the_admin(admin_client: Client) -> None:
    assert admin_client.get(reverse("admin:accounts_apikey_add")).status_code == 403


def test_neither_the_hash_nor_the_key_is_shown(admin_client: Client, keys: dict) -> None:
    key, raw = keys["alice"]
    pages = [
        admin_client.get(reverse(CHANGELIST)),
        admin_client.get(reverse("admin:accounts_apikey_change", args=[key.pk])),
        admin_client.get(reverse("admin:accounts_apikey_history", args=[key.pk])),
    ]
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert key.secret_hash not in html
        assert raw not in html and raw[12:24] not in html


def test_the_change_page_cannot_change_the_key(admin_client: Client, keys: dict) -> None:
    key, _ = keys["alice"]
    url = reverse("admin:accounts_apikey_change", args=[key.pk])
    admin_client.post(url, {"name": "renamed", "secret_hash": "0" * 64})
    key.refresh_from_db()
    assert (key.name, key.secret_hash) == ("alice-laptop", keys["alice"][0].secret_hash)
