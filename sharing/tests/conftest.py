"""Fixtures of the sharing tests: Alice owns a conversation of two turns (a question, a
Markdown reply), Bob is another signed-in person, and files go to a temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from chat.markdown import render_markdown
from chat.models import Conversation, Message


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", email="alice@example.com", password="pw-alice-123")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", email="bob@example.com", password="pw-bob-12345")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice: User) -> Client:
    return client_for(alice)


@pytest.fixture
def bob_client(bob: User) -> Client:
    return client_for(bob)


def add(conversation: Conversation, role: str, content: str, **fields: Any) -> Message:
    """A message appended to the conversation's newest one (a reply gets its HTML)."""
    if role == Message.Role.ASSISTANT:
        fields.setdefault("content_html", render_markdown(content))
        fields.setdefault("provider", conversation.provider)
        fields.setdefault("model", conversation.model)
    message = Message.objects.create(
        conversation=conversation, role=role, content=content, **fields
    )
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=message)
    conversation.current_leaf = message
    return message


@pytest.fixture
def conversation(alice: User) -> Conversation:
    """Alice's "Trip plans": a question and a reply with a Markdown list."""
    conversation = Conversation.objects.create(
        owner=alice,
        title="Trip plans",
        provider="openai",
        model="gpt-4o",
        system_prompt="You are Alice's private travel agent.",
    )
    add(conversation, Message.Role.USER, "Where should I go in May?")
    add(conversation, Message.Role.ASSISTANT, "Try **Lisbon**:\n\n- mild weather\n- good food")
    return conversation
