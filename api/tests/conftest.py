"""The API tests' fixtures: the chat tests' scripted fake provider, no titles written by a
model, fast password hashing; and Alice with a personal API key, using the official
``openai`` SDK as the client through httpx's ASGI transport (the app in this process)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2 as httpx
import openai
import pytest
from django.contrib.auth.models import User

from accounts.services import api_key_create
from chat.tests.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    _fast_password_hashing,
    _no_titles_by_a_model,
    fake_provider,
)


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def raw_key(alice: User) -> str:
    """Alice's key, as she copied it when it was shown once."""
    _key, raw = api_key_create(user=alice, name="laptop")
    return raw


@pytest.fixture
async def client(raw_key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """The openai SDK on /v1 with Alice's key (no retries: a refusal is seen as sent)."""
    from chat_ai.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield openai.AsyncOpenAI(
            api_key=raw_key, base_url="http://testserver/v1", http_client=http, max_retries=0
        )
