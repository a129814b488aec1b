"""Django's middleware run in the event loop (chat_ai/middleware.py): the security
headers, CSRF and the language still apply, static files are still served, and the
deploy check still notices a missing security middleware."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, override_settings
from django.urls import reverse

from chat_ai.middleware import check_security_middleware

pytestmark = pytest.mark.django_db(transaction=True)


async def test_an_async_request_gets_every_security_header_and_csrf_applies() -> None:
    user = await User.objects.acreate_user("alice", password="pw-alice-123")
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    page = await client.get(reverse("chat:index"), headers={"Accept-Language": "ru"})
    assert page.status_code == 200
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Content-Language"] == "ru"  # LocaleMiddleware ran
    refused = await client.post(reverse("chat:reply_new"), {"content": "hi"})
    assert refused.status_code == 403  # no CSRF token


async def test_static_files_are_still_served_in_async_mode() -> None:
    response = await AsyncClient().get("/static/chat/js/main.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize(
    ("removed", "check_id"),
    [
        ("chat_ai.middleware.SecurityMiddleware", "chat_ai.W001"),
        ("chat_ai.middleware.XFrameOptionsMiddleware", "chat_ai.W002"),
        ("chat_ai.middleware.CsrfViewMiddleware", "chat_ai.W003"),
    ],
)
def test_the_deploy_check_notices_a_missing_security_middleware(
    settings: object, removed: str, check_id: str
) -> None:
    assert check_security_middleware() == []
    middleware = [m for m in settings.MIDDLEWARE if m != removed]  # type: ignore[attr-defined]
    with override_settings(MIDDLEWARE=middleware):
        assert [w.id for w in check_security_middleware()] == [check_id]
