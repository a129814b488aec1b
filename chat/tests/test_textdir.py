"""The base direction of message text (UAX #9 rule P2), used for dir= on every message."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message
from chat.textdir import text_direction


@pytest.mark.parametrize(
    ("text", "direction"),
    [
        ("مرحبا بك في الدردشة", "rtl"),
        ("שלום עולם", "rtl"),
        ("123, 456: שלום", "rtl"),  # digits and punctuation are neutral
        ("`print()` يطبع النص", "rtl"),  # code carries no direction
        ("```python\nx = 1\n```\nهذا هو الرمز", "rtl"),
        ("https://example.org/x هذا رابط", "rtl"),
        ("Hello مرحبا", "ltr"),
        ("Привет мир", "ltr"),
        ("", "ltr"),
        ("1234 !?", "ltr"),
    ],
)
def test_the_first_strong_character_decides(text: str, direction: str) -> None:
    assert text_direction(text) == direction


@pytest.mark.django_db
def test_a_stored_arabic_reply_is_shown_right_to_left(fake_provider: type) -> None:
    user = User.objects.create_user("amal", password="pw-amal-123")
    conversation = Conversation.objects.create(owner=user, provider="fake", model="fake-small")
    Message.objects.create(conversation=conversation, role="user", content="سلام")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="مرحبا",
        content_html="<p>مرحبا</p>",
        provider="fake",
        model="fake-small",
    )
    client = Client()
    client.force_login(user)
    html = client.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert html.count('dir="rtl" data-content') == 2
