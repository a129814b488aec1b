"""The admin's list of share links: everyone's, with a Revoke action; no token in full."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from chat.models import Conversation
from sharing import selectors, services
from sharing.models import SharedLink

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123"))
    return client


def test_the_admin_lists_links_without_their_tokens_and_revokes_them(
    admin_client: Client, alice: User, conversation: Conversation
) -> None:
    link = services.shared_link_create(
        owner=alice, conversation_id=conversation.pk, audience="public"
    )
    changelist = reverse("admin:sharing_sharedlink_changelist")
    html = admin_client.get(changelist).content.decode()
    assert "Trip plans" in html and "alice" in html
    assert link.token not in html
    assert (
        link.token
        not in admin_client.get(
            reverse("admin:sharing_sharedlink_change", args=[link.pk])
        ).content.decode()
    )

    response = admin_client.post(
        changelist, {"action": "revoke_selected", "_selected_action": [link.pk]}, follow=True
    )
    assert "1 link revoked." in response.content.decode()
    assert selectors.shared_link_for_token(token=link.token) is None
    link.refresh_from_db()
    assert link.revoked_at is not None and SharedLink.objects.count() == 1
