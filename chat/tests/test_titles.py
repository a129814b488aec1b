"""Titles written by a model in the background after a new chat's first reply (issue
10): the chosen model is asked, its answer cleaned; the first line of the message stays
when the model fails, says nothing usable, titles are off, or the person renamed the
chat meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from chat import services
from chat.models import Conversation
from chat.providers import AuthenticationError
from chat.services.titles import title_clean
from chat.tests.conftest import StartReply
from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "how do i make my sourdough starter more active in a cold kitchen"
FIRST_LINE = "how do i make my sourdough starter more active in a cold…"

FirstReply = Callable[[Script], Awaitable[Conversation]]


@pytest.fixture
def first_reply(
    start_reply: StartReply, fake_provider: type, user: User
) -> Callable[[Script], Awaitable[Conversation]]:
    """``await first_reply(title_script)``: a new chat's first message and reply, then
    the title request (answered with ``title_script``), all by the fake model; returns
    the conversation once the hub's background work (the title) is done."""

    async def run(title_script: Script) -> Conversation:
        fake_provider.scripts += [Script(chunks=["Keep it warm."]), title_script]
        run = await start_reply(None, owner=user, content=QUESTION, provider="fake")
        async with asyncio.timeout(5):
            await services.get_hub().wait_idle()
        return await Conversation.objects.aget(pk=run.prepared.conversation_id)

    return run


async def test_a_model_writes_the_title_after_the_first_reply(
    first_reply: FirstReply, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = ""  # the conversation's own model
    conversation = await first_reply(Script(chunks=['"Sourdough starter', ' in the cold."']))
    assert conversation.title == "Sourdough starter in the cold"
    asked = fake_provider.calls[-1]
    assert asked["model"] == "fake-small" and asked["options"].max_tokens
    assert QUESTION in asked["messages"][-1]["content"]
    assert "Keep it warm." in asked["messages"][-1]["content"]


async def test_the_title_model_setting_chooses_another_model(
    first_reply: FirstReply, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = "fake/fake-large"
    conversation = await first_reply(Script(chunks=["Cold starter"]))
    assert conversation.title == "Cold starter"
    assert fake_provider.calls[-1]["model"] == "fake-large"


async def test_the_first_line_stays_when_the_title_model_fails(
    first_reply: FirstReply, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = ""
    conversation = await first_reply(Script(chunks=[], error=AuthenticationError(provider="Fake")))
    assert conversation.title == FIRST_LINE


async def test_the_first_line_stays_when_titles_are_off(
    first_reply: FirstReply, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = "off"
    conversation = await first_reply(Script(chunks=["Unused"]))
    assert conversation.title == FIRST_LINE
    assert len(fake_provider.calls) == 1  # only the reply itself


async def test_a_rename_made_meanwhile_wins(
    start_reply: StartReply, user: User, fake_provider: type, settings: Any
) -> None:
    settings.CHAT_TITLE_MODEL = ""
    fake_provider.scripts += [
        Script(chunks=["Keep it warm."]),
        Script(chunks=["Model title"], first_delay=0.3),
    ]
    run = await start_reply(None, owner=user, content=QUESTION, provider="fake")
    await run.done()  # the title model is being asked now
    conversation = await Conversation.objects.aget(pk=run.prepared.conversation_id)
    await sync_to_async(services.conversation_rename)(conversation=conversation, title="Mine")
    async with asyncio.timeout(5):
        await services.get_hub().wait_idle()
    assert len(fake_provider.calls) == 2  # the title model answered
    await conversation.arefresh_from_db()
    assert conversation.title == "Mine"


async def test_the_title_reads_the_text_of_a_message_with_attachments(
    first_reply: FirstReply, fake_provider: type, settings: Any, monkeypatch: Any
) -> None:
    """A message with files reaches the history as content parts: the title model is
    asked about its text, never about the file's bytes."""
    from chat.services import titles

    settings.CHAT_TITLE_MODEL = ""
    parts = [
        {"type": "text", "text": QUESTION},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    real_title_write = titles.title_write

    async def title_write(*, prepared: Any, reply: str) -> str:
        prepared.history[-1] = {"role": "user", "content": parts}
        return await real_title_write(prepared=prepared, reply=reply)

    monkeypatch.setattr(titles, "title_write", title_write)
    conversation = await first_reply(Script(chunks=["Cold starter"]))
    assert conversation.title == "Cold starter"
    asked = fake_provider.calls[-1]["messages"][-1]["content"]
    assert QUESTION in asked and "base64" not in asked


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
