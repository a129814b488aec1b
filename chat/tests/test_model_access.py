"""Access rules per group (issue 12) as the chat page obeys them: the model menu shows
only what a person's groups may use, and sending to another model is refused with the
reason before anything is saved."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from access.models import ModelAccessRule
from chat import services
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def limited(fake_provider: type) -> User:
    """A person whose group may use fake-small only."""
    user = User.objects.create_user("lim", password="pw-lim-12345")
    group = Group.objects.create(name="interns")
    group.user_set.add(user)
    ModelAccessRule.objects.create(group=group, provider="fake", model_pattern="fake-small")
    return user


def test_the_menu_shows_only_the_models_the_group_may_use(limited: User) -> None:
    client = Client()
    client.force_login(limited)
    html = client.get(reverse("chat:index")).content.decode()
    assert 'value="fake::fake-small"' in html
    assert 'value="fake::fake-large"' not in html


def test_a_person_whose_groups_may_use_no_model_is_told_why(limited: User) -> None:
    ModelAccessRule.objects.filter(group__name="interns").update(
        provider="*", model_pattern="*", allow=False
    )
    client = Client()
    client.force_login(limited)
    html = client.get(reverse("chat:index")).content.decode()
    reason = "Your groups may not use any model on this server."
    assert 'value="fake::' not in html
    assert f'<p class="composer-no-model" role="note">{reason}' in html
    assert f'data-no-model="{reason}' in html  # what Send says, instead of "Choose a model"


def test_sending_to_a_forbidden_model_is_refused_and_nothing_saved(limited: User) -> None:
    conversation = Conversation.objects.create(owner=limited, provider="fake", model="fake-small")
    with pytest.raises(ValidationError, match="may not use fake-large"):
        services.reply_prepare(
            conversation=conversation,
            owner=limited,
            action="send",
            content="hi",
            provider="fake",
            model="fake-large",
        )
    assert not Message.objects.exists()


def test_a_compare_including_a_forbidden_model_is_refused(limited: User) -> None:
    with pytest.raises(ValidationError, match="may not use fake-large"):
        services.reply_prepare(
            conversation=None,
            owner=limited,
            action="send",
            content="hi",
            compare=[("fake", "fake-small"), ("fake", "fake-large")],
        )
    assert not Conversation.objects.exists()


def test_people_without_rules_keep_every_model(fake_provider: type) -> None:
    free = User.objects.create_user("free", password="pw-free-12345")
    prepared = services.reply_prepare(
        conversation=None,
        owner=free,
        action="send",
        content="hi",
        provider="fake",
        model="fake-large",
    )
    assert prepared.model == "fake-large"
