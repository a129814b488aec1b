"""Titles written by a model in the background after a new chat's first reply (issue
10): the chosen model is asked, its answer cleaned; the first line of the message stays
when the model fails, says nothing usable, titles are off, or the person renamed the
chat meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chat import services
from chat.models import Conversation
from chat.providers import AuthenticationError
from chat.services.titles import title_clean
from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "how do i make my sourdough starter more active in a cold kitchen"
FIRST_LINE = "how do i make my sourdough starter more active in a cold…"


@pytest.fixture
def user() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


async def first_reply(user: User, fake_provider: type, title_script: Script) -> Conversation:
    """A new chat's first message and reply, then the title request, all answered by
    the fake model; returns the conversation once the background title work is done."""
    fake_provider.scripts += [Script(chunks=["Keep it warm."]), title_script]
    prepared = await sync_to_async(services.reply_prepare)(
        conversation=None, owner=user, action="send", content=QUESTION, provider="fake"
    )
    hub = services.get_hub()
    run = hub.start_run(prepared)
    await run.done()
    pending = [task for task in list(hub._tasks) if "title_write" in repr(task.get_coro())]
    if pending:
        await asyncio.wait(pending, timeout=5)
    return await Conversation.objects.aget(pk=prepared.conversation_id)


async def test_a_model_writes_the_title_after_the_first_reply(
    user: User, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = ""  # the conversation's own model
    conversation = await first_reply(
        user, fake_provider, Script(chunks=['"Sourdough starter', ' in the cold."'])
    )
    assert conversation.title == "Sourdough starter in the cold"
    asked = fake_provider.calls[-1]
    assert asked["model"] == "fake-small" and asked["options"].max_tokens
    assert QUESTION in asked["messages"][-1]["content"]
    assert "Keep it warm." in asked["messages"][-1]["content"]


async def test_the_title_model_setting_chooses_another_model(
    user: User, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = "fake/fake-large"
    conversation = await first_reply(user, fake_provider, Script(chunks=["Cold starter"]))
    assert conversation.title == "Cold starter"
    assert fake_provider.calls[-1]["model"] == "fake-large"


async def test_the_first_line_stays_when_the_title_model_fails(
    user: User, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = ""
    conversation = await first_reply(
        user, fake_provider, Script(chunks=[], error=AuthenticationError(provider="Fake"))
    )
    assert conversation.title == FIRST_LINE


async def test_the_first_line_stays_when_titles_are_off(
    user: User, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = "off"
    conversation = await first_reply(user, fake_provider, Script(chunks=["Unused"]))
    assert conversation.title == FIRST_LINE
    assert len(fake_provider.calls) == 1  # only the reply itself


async def test_a_rename_made_meanwhile_wins(user: User, fake_provider: type, settings: Any) -> None:
    settings.CHAT_TITLE_MODEL = ""
    fake_provider.scripts += [
        Script(chunks=["Keep it warm."]),
        Script(chunks=["Model title"], first_delay=0.3),
    ]
    prepared = await sync_to_async(services.reply_prepare)(
        conversation=None, owner=user, action="send", content=QUESTION, provider="fake"
    )
    hub = services.get_hub()
    await hub.start_run(prepared).done()
    conversation = await Conversation.objects.aget(pk=prepared.conversation_id)
    await sync_to_async(services.conversation_rename)(conversation=conversation, title="Mine")
    await asyncio.sleep(0.6)
    await conversation.arefresh_from_db()
    assert conversation.title == "Mine"


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ('"Baking bread at home."', "Baking bread at home"),
        ("Title: **Cold kitchens**\nmore text", "Cold kitchens"),
        ("**Title:** Bread history", "Bread history"),
        ("<think>hmm</think>Заголовок: «Закваска»", "Закваска"),
        ("   \n  ", ""),
        ("word " * 40, ("word " * 12).strip() + "…"),
    ],
)
def test_title_clean_keeps_only_a_short_title(answer: str, title: str) -> None:
    assert title_clean(answer) == title


@pytest.mark.parametrize(
    ("message", "title"),
    [
        (
            "How do I bake bread at home with nothing but flour, water, salt and patience.",
            "How do I bake bread at home with nothing but flour, water…",
        ),
        ("```python\nprint('hi')\n```", "print('hi')"),
        ("**bold** start", "bold start"),
        ("# A heading", "A heading"),
        ("Short.", "Short."),
    ],
)
def test_the_first_line_title_is_plain_text(message: str, title: str) -> None:
    assert services.title_from_text(message) == title


def test_the_bundled_local_model_keeps_the_first_line_unless_a_title_model_is_set(
    settings: Any,
) -> None:
    from chat.services.titles import title_model

    settings.CHAT_TITLE_MODEL = ""
    assert title_model(provider="local", model="smollm2-135m-instruct") is None
    assert title_model(provider="fake", model="fake-small") == ("fake", "fake-small")
    settings.CHAT_TITLE_MODEL = "fake/fake-large"
    assert title_model(provider="local", model="smollm2-135m-instruct") == ("fake", "fake-large")
