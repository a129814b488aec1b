"""Sentences about a reply name its provider as the person reads it: the local model's
label is translated (its ``label`` stays English for logs)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import translation

from chat import services
from chat.models import Conversation
from chat.providers import get_provider

pytestmark = pytest.mark.django_db


def test_the_local_models_label_is_translated_but_logs_keep_english() -> None:
    provider = get_provider("local")
    with translation.override("ru"):
        assert provider.shown_label().startswith("Локальная модель")
    assert provider.label.startswith("Local")


def test_a_reply_to_the_local_model_carries_the_translated_label(settings: object) -> None:
    settings.CHAT_RATE_LIMIT_MESSAGES = 0  # type: ignore[attr-defined]
    owner = User.objects.create_user("label-owner", password="pw-label-123")
    provider = get_provider("local")
    if not provider.status().usable:
        pytest.skip("the local model is not installed here")
    conversation = Conversation.objects.create(
        owner=owner, provider="local", model=provider.default_model()
    )
    with translation.override("ru"):
        prepared = services.reply_prepare(conversation=conversation, action="send", content="Hi")
    assert prepared.label.startswith("Локальная модель")
