"""Sign-in and sign-up pages (accounts.views)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_sign_up_creates_the_account_and_signs_in(client: Client) -> None:
    response = client.post(
        reverse("signup"),
        {"username": "carol", "password1": "a-long-pass-4821", "password2": "a-long-pass-4821"},
    )
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(User.objects.get(username="carol").pk)


def test_signup_can_be_switched_off(client: Client, settings: Any) -> None:
    settings.ALLOW_SIGNUP = False
    assert client.get(reverse("signup")).status_code == 404


def test_login_page_links_to_signup_only_when_open(client: Client, settings: Any) -> None:
    settings.ALLOW_SIGNUP = True
    assert reverse("signup") in client.get(reverse("login")).content.decode()
    settings.ALLOW_SIGNUP = False
    assert reverse("signup") not in client.get(reverse("login")).content.decode()


def test_a_signed_in_person_skips_the_sign_in_page(client: Client) -> None:
    client.force_login(User.objects.create_user("dave", password="pw-dave-123"))
    response = client.get(reverse("login"))
    assert (response.status_code, response["Location"]) == (302, reverse("chat:index"))


def test_sign_up_refuses_a_name_reserved_for_single_sign_on(client: Any) -> None:
    from django.contrib.auth.models import User

    response = client.post(
        "/accounts/signup/",
        {"username": "oidc-1234", "password1": "sturdy-pass-4821", "password2": "sturdy-pass-4821"},
    )
    assert "reserved for single sign-on" in response.content.decode()
    assert not User.objects.filter(username="oidc-1234").exists()
