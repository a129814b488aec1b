"""The app's icon where browsers look for one: /favicon.ico (asked for by pages without
a <link rel="icon">, and by tools) and the admin's pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


def test_favicon_ico_leads_to_the_apps_icon(client: Client) -> None:
    # It was a 404 in every server log.
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/chat/icons/icon-192.png"
    assert (Path(settings.BASE_DIR) / "static/chat/icons/icon-192.png").is_file()


def test_the_admins_pages_name_the_icon(client: Client) -> None:
    login = client.get("/admin/login/").content.decode()
    assert '<link rel="icon" href="/static/chat/icons/icon.svg" type="image/svg+xml">' in login
    admin = User.objects.create_superuser("root", "root@example.com", "pw-root-12345")
    client.force_login(admin)
    index = client.get("/admin/").content.decode()
    assert 'rel="icon" href="/static/chat/icons/icon.svg"' in index
    assert 'id="site-name"' in index  # Django's own header is kept
