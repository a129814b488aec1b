"""Uptime monitors: a health endpoint that says whether the database and Redis answer,
and HEAD wherever GET works (issue 9)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from chat.tests.live import free_port

pytestmark = pytest.mark.django_db


def test_health_answers_ok_when_the_database_answers(client: Client) -> None:
    response = client.get(reverse("chat:health"))
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ok" and data["database"] == "ok"
    assert response["Cache-Control"] == "no-store"


def test_health_answers_head_without_signing_in(client: Client) -> None:
    response = client.head(reverse("chat:health"))
    assert response.status_code == 200 and response.content == b""


def test_health_says_503_when_redis_does_not_answer(client: Client, settings: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.REDIS_URL = dead
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    response = client.get(reverse("chat:health"))
    assert response.status_code == 503
    data = response.json()
    assert (data["status"], data["database"], data["redis"]) == ("unavailable", "ok", "unavailable")
    assert "127.0.0.1" not in response.content.decode()


def test_head_works_where_get_works(client: Client) -> None:
    # Signed out: the same redirect to the sign-in page as GET, not 405.
    assert client.head("/").status_code == client.get("/").status_code == 302
    user = User.objects.create_user("mon", password="pw-mon-12345")
    client.force_login(user)
    assert client.head("/").status_code == 200
