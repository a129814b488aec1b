"""Security: headers, rate limits, login throttling, production settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import AsyncClient, Client
from django.urls import reverse

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    cache.clear()


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


def test_every_response_has_a_csp_without_inline_script(client: Client) -> None:
    response = client.get(reverse("login"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy


def test_admin_keeps_script_strict_too(client: Client) -> None:
    policy = client.get("/admin/login/")["Content-Security-Policy"]
    assert "script-src 'self';" in policy


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


def test_login_pauses_after_repeated_failures(alice: User, settings: Any) -> None:
    settings.LOGIN_MAX_FAILURES = 3
    client = Client()
    for _ in range(3):
        response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_successful_login_works_below_the_limit(alice: User, settings: Any) -> None:
    settings.LOGIN_MAX_FAILURES = 3
    client = Client()
    client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_signup_can_be_switched_off(client: Client, settings: Any) -> None:
    settings.ALLOW_SIGNUP = False
    assert client.get(reverse("signup")).status_code == 404


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


def test_login_page_links_to_signup_only_when_open(client: Client, settings: Any) -> None:
    settings.ALLOW_SIGNUP = True
    assert reverse("signup") in client.get(reverse("login")).content.decode()
    settings.ALLOW_SIGNUP = False
    assert reverse("signup") not in client.get(reverse("login")).content.decode()
