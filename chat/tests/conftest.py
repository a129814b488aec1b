from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from chat.tests.fakes.server import FakeUpstream

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from chat.models import Conversation
    from chat.services import ReplyRun
    from chat.tests.fakes.fake_provider import Script


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fresh fake upstream HTTP server on 127.0.0.1 for one test."""
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def fake_provider() -> Iterator[type]:
    """The scripted FakeProvider registered as "fake" for one test."""
    from chat.providers import PROVIDER_REGISTRY
    from chat.tests.fakes.fake_provider import FakeProvider

    FakeProvider.scripts = []
    FakeProvider.calls = []
    FakeProvider.cancelled = []
    PROVIDER_REGISTRY["fake"] = FakeProvider
    try:
        yield FakeProvider
    finally:
        PROVIDER_REGISTRY.pop("fake", None)


@pytest.fixture(autouse=True)
def _no_titles_by_a_model(settings: object) -> None:
    """A title written by a model would ask the fake models one more question after
    each first reply; chat/tests/test_titles.py switches it on."""
    settings.CHAT_TITLE_MODEL = "off"  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: object) -> None:
    """Tests create many users; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


# --- Replies run against the scripted fake provider (service and stream tests) ---------


@pytest.fixture
def user() -> User:
    """Alice, who owns the conversations of a test (the test brings the database)."""
    from django.contrib.auth.models import User

    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def conversation(user: User, fake_provider: type) -> Conversation:
    """Alice's conversation with the fake provider's "fake-small"."""
    from chat.models import Conversation

    return Conversation.objects.create(owner=user, provider="fake", model="fake-small")


StartReply = Callable[..., Awaitable["ReplyRun"]]


@pytest.fixture
def start_reply(fake_provider: type) -> StartReply:
    """``await start_reply(conversation, script, **kwargs)``: queue ``script`` (None: the
    fake's default answer) for the fake provider, prepare a reply (``kwargs`` go to
    ``reply_prepare``; action "send" and content "Go" unless given; ``conversation`` None
    with ``owner=`` starts a new chat) and start its run as the chat page does, with
    nobody following it yet. Returns the run."""
    from asgiref.sync import sync_to_async

    from chat import services

    async def start(
        conversation: Conversation | None, script: Script | None = None, **kwargs: Any
    ) -> ReplyRun:
        if script is not None:
            fake_provider.scripts.append(script)
        kwargs.setdefault("action", "send")
        if kwargs["action"] == "send":
            kwargs.setdefault("content", "Go")
        prepared = await sync_to_async(services.reply_prepare)(conversation=conversation, **kwargs)
        return services.get_hub().start_run(prepared)

    return start


async def read_stream(stream: AsyncIterator[bytes]) -> list[bytes]:
    """Every chunk of an SSE stream, to its end."""
    return [chunk async for chunk in stream]


PageStream = Callable[..., Awaitable[list[bytes]]]


@pytest.fixture
def page_stream(start_reply: StartReply) -> PageStream:
    """``await page_stream(conversation, script, **kwargs)``: what the chat page's POST
    receives for one reply (``start_reply``'s arguments), read to its end: the raw SSE
    chunks of ``run_follow`` on the run, as the reply views stream it."""
    from chat import services

    async def stream(
        conversation: Conversation | None, script: Script | None = None, **kwargs: Any
    ) -> list[bytes]:
        run = await start_reply(conversation, script, **kwargs)
        show_detail = run.prepared.show_detail
        return await read_stream(services.run_follow(run, show_detail=show_detail))

    return stream
