"""A conversation whose model left the person's menu (an admin's access rule changed, a
provider's key was removed): the page says so and which model the next message goes to,
and the replies keep naming the provider that wrote them."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from access.models import ModelAccessRule
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def page_for(user: User, conversation: Conversation) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("chat:conversation", args=[conversation.pk]))
    assert response.status_code == 200
    return html_lib.unescape(response.content.decode())


def model_note(page: str) -> str | None:
    found = re.search(r'<p class="[^"]*" id="model-note" role="note">(.*?)</p>', page, re.S)
    return found.group(1) if found else None


def selected_option(page: str) -> tuple[str, str]:
    """(value, text) of the model menu's selected option."""
    menu = page.split('id="model-select"', 1)[1].split("</select>", 1)[0]
    found = re.search(r'<option value="([^"]*)"[^>]*\sselected>([^<]*)</option>', menu)
    assert found, "no model is selected in the menu"
    return found.group(1), found.group(2)


def reply_labels(page: str) -> list[str]:
    thread = page.split('id="thread-inner"', 1)[1].split('id="composer"', 1)[0]
    return re.findall(r"data-model-label>([^<]*)</span>", thread)


def conversation_with_reply(owner: User, provider: str, model: str) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, provider=provider, model=model)
    question = Message.objects.create(conversation=conversation, role="user", content="Hi")
    Message.objects.create(
        conversation=conversation,
        parent=question,
        role="assistant",
        content="Hello",
        provider=provider,
        model=model,
    )
    return conversation


@pytest.fixture
def limited(fake_provider: type) -> User:
    """A person whose group may now use fake-small only."""
    user = User.objects.create_user("lim", password="pw-lim-12345")
    group = Group.objects.create(name="interns")
    group.user_set.add(user)
    ModelAccessRule.objects.create(group=group, provider="fake", model_pattern="fake-small")
    return user


def test_a_model_no_longer_allowed_is_named_with_the_model_the_next_message_uses(
    limited: User,
) -> None:
    conversation = conversation_with_reply(limited, "fake", "fake-large")

    page = page_for(limited, conversation)

    assert selected_option(page) == ("fake::fake-small", "Fake · fake-small")
    assert model_note(page) == (
        "You may no longer use this conversation's model: your next message will go to "
        "Fake · fake-small unless you pick another model. "
        "Your group may not use fake-large (Fake). Ask an admin."
    )
    assert reply_labels(page) == ["Fake · fake-large"]
    conversation.refresh_from_db()
    assert conversation.model == "fake-large"  # opening it changes nothing


def test_a_replys_provider_left_out_of_the_menu_keeps_its_name(
    fake_provider: type, settings: object
) -> None:
    """OpenAI has no key in the tests: the menu leaves it out, its replies still say
    "OpenAI"; the conversation's model, gone from the menu, gets the note, and the menu
    holds the admin's default model."""
    settings.CHAT_DEFAULT_PROVIDER = "fake"  # type: ignore[attr-defined]
    settings.CHAT_DEFAULT_MODEL = "fake-large"  # type: ignore[attr-defined]
    alice = User.objects.create_user("alice", password="pw-alice-123")
    conversation = conversation_with_reply(alice, "openai", "gpt-4o")
    reply = conversation.messages.get(role="assistant")
    question = Message.objects.create(
        conversation=conversation, parent=reply, role="user", content="Again?"
    )
    Message.objects.create(
        conversation=conversation,
        parent=question,
        role="assistant",
        content="Gone",
        provider="retired-provider",
        model="old-model",
    )

    page = page_for(alice, conversation)

    assert 'data-provider="openai"' not in page.split('id="model-select"', 1)[1]
    assert reply_labels(page) == ["OpenAI · gpt-4o", "old-model"]
    assert selected_option(page) == ("fake::fake-large", "Fake · fake-large")
    assert model_note(page) == (
        "This conversation's model, OpenAI · gpt-4o, is not available now: your next "
        "message will go to Fake · fake-large unless you pick another model."
    )


def test_a_conversation_on_an_allowed_model_has_no_note(limited: User) -> None:
    conversation = conversation_with_reply(limited, "fake", "fake-small")

    page = page_for(limited, conversation)

    assert model_note(page) is None
    assert selected_option(page) == ("fake::fake-small", "Fake · fake-small")
    assert reply_labels(page) == ["Fake · fake-small"]
