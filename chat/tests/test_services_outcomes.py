"""How a reply ends (issue 8): finish reasons, reasoning, empty replies with a reason,
Continue and Retry, histories every API accepts, text a database refuses, faults of our
own, and errors worded for people. Service level: run events and database state (what
the chat page receives is tested in test_chat_stream.py)."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from chat import services
from chat.models import Conversation, Message
from chat.providers import AuthenticationError, ProviderTimeoutError, UnavailableError
from chat.tests.fakes.fake_provider import Script
from chat.tests.test_services import kinds, reasoning_of, run_events, text_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def user() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def conversation(user: User, fake_provider: type) -> Conversation:
    return Conversation.objects.create(owner=user, provider="fake", model="fake-small")


async def last_reply() -> Message:
    return await Message.objects.filter(role="assistant").alatest("id")


# --- finish reasons ---------------------------------------------------------------------


async def test_a_reply_that_ended_normally_is_complete_with_its_finish_reason(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["Done."]))
    events = await run_events(conversation, content="Hi")
    finished = events[-1]
    assert isinstance(finished, services.RunFinished)
    assert (finished.status, finished.finish_reason) == ("complete", "stop")
    reply = await last_reply()
    assert (reply.status, reply.finish_reason) == ("complete", "stop")


async def test_a_stream_without_finish_reason_is_cut_off_not_complete(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["Step 1. Open the", " settings and"], finish=None))
    events = await run_events(conversation, content="How?")
    finished = events[-1]
    assert isinstance(finished, services.RunFinished) and finished.status == "incomplete"
    assert finished.finish_reason == "cut_off" and "cut off" in finished.notice
    reply = await last_reply()
    assert (reply.status, reply.finish_reason) == ("incomplete", "cut_off")
    assert reply.content == "Step 1. Open the settings and"
    assert reply.can_continue and "cut off" in reply.notice


async def test_a_reply_cut_by_the_token_limit_is_stored_and_offers_continue(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["A long answer"], finish="length"))
    events = await run_events(conversation, content="Tell me everything")
    finished = events[-1]
    assert isinstance(finished, services.RunFinished)
    assert (finished.status, finished.finish_reason, finished.can_continue) == (
        "incomplete",
        "length",
        True,
    )
    assert "token limit" in finished.notice
    reply = await last_reply()
    assert (reply.status, reply.finish_reason) == ("incomplete", "length")


async def test_continue_keeps_the_reasoning_the_reply_already_had(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(
        Script(reasoning=["Weighing it up."], chunks=["The first half"], finish="length")
    )
    await run_events(conversation, content="Tell me everything")
    cut = await last_reply()
    assert cut.reasoning == "Weighing it up." and cut.reasoning_ms is not None
    fake_provider.scripts.append(Script(chunks=[" and the second half."]))
    await run_events(conversation, action="continue", reply_id=cut.pk)
    reply = await Message.objects.aget(pk=cut.pk)
    assert reply.content == "The first half and the second half."
    assert reply.reasoning == "Weighing it up."  # not wiped by a run that did not think
    assert reply.reasoning_ms == cut.reasoning_ms


async def test_continue_appends_to_the_same_reply_with_its_text_as_context(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["The first half"], finish="length"))
    await run_events(conversation, content="Tell me everything")
    cut = await last_reply()
    fake_provider.scripts.append(Script(chunks=[" and the second half."]))
    events = await run_events(conversation, action="continue", reply_id=cut.pk)
    started = events[0]
    assert isinstance(started, services.RunStarted)
    assert (started.reply_id, started.prefix) == (cut.pk, "The first half")  # continuing
    assert text_of(events) == " and the second half."  # only the new text is streamed
    assert isinstance(events[-1], services.RunFinished)
    reply = await Message.objects.aget(pk=cut.pk)
    assert (reply.status, reply.content) == ("complete", "The first half and the second half.")
    assert reply.output_tokens == 3 + 3  # both parts of the reply (the fake reports 10/3)
    assert await Message.objects.filter(role="assistant").acount() == 1
    sent = fake_provider.calls[-1]["messages"]
    assert sent[:2] == [
        {"role": "user", "content": "Tell me everything"},
        {"role": "assistant", "content": "The first half"},
    ]
    assert sent[2]["role"] == "user" and "Continue" in sent[2]["content"]


async def test_continue_is_refused_for_a_complete_reply(
    conversation: Conversation, fake_provider: type
) -> None:
    await run_events(conversation, content="Hi")
    reply = await last_reply()
    with pytest.raises(ValidationError, match="cut off"):
        await sync_to_async(services.reply_prepare)(
            conversation=conversation, action="continue", reply_id=reply.pk
        )
    assert (await Message.objects.aget(pk=reply.pk)).status == "complete"


# --- empty replies say why ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (Script(chunks=[], finish="content_filter", finish_detail="SAFETY"), "safety filter"),
        (
            Script(chunks=[], finish="content_filter", finish_detail="prompt blocked: OTHER"),
            "blocked the message before the model answered",
        ),
        (Script(chunks=[], finish="refusal"), "declined to answer"),
        (Script(chunks=[], reasoning=["Let me think"], finish="length"), "thinking"),
        (Script(chunks=[], usage=(5, 256), usage_reasoning=256, finish="length"), "thinking"),
        (Script(chunks=[], finish="length"), "token limit was reached"),
        (Script(chunks=[]), "empty reply"),
    ],
    ids=["safety", "prompt-blocked", "refusal", "thinking", "thinking-tokens", "length", "empty"],
)
async def test_an_empty_reply_says_why(
    conversation: Conversation, fake_provider: type, script: Script, expected: str
) -> None:
    fake_provider.scripts.append(script)
    events = await run_events(conversation, content="Hi")
    failed = events[-1]
    assert isinstance(failed, services.RunFailed) and expected in failed.message
    reply = await last_reply()
    assert reply.status == "error" and expected in reply.error
    assert reply.finish_reason == (script.finish or "")


# --- reasoning --------------------------------------------------------------------------


async def test_reasoning_is_streamed_and_stored_apart_and_never_sent_back(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(
        Script(reasoning=["The user greets.", " Greet back."], chunks=["Hello!"])
    )
    events = await run_events(conversation, content="Hi")
    # Reasoning comes first, then the answer, each as its own kind of event.
    assert kinds(events) == [
        "RunStarted",
        "ReasoningDelta",
        "ReasoningDelta",
        "TextDelta",
        "Usage",
        "RunFinished",
    ]
    assert reasoning_of(events) == "The user greets. Greet back."
    assert text_of(events) == "Hello!"
    reply = await last_reply()
    assert (reply.content, reply.reasoning) == ("Hello!", "The user greets. Greet back.")
    await run_events(conversation, content="And?")
    sent = fake_provider.calls[-1]["messages"]
    assert sent == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "And?"},
    ]


# --- histories --------------------------------------------------------------------------


async def test_a_question_whose_reply_failed_is_not_sent_again_when_asked_again(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["Par"], error=UnavailableError()))
    await run_events(conversation, content="What is the capital of France?")
    await run_events(conversation, content="What is the capital of France?")
    assert fake_provider.calls[-1]["messages"] == [
        {"role": "user", "content": "What is the capital of France?"}
    ]


async def test_history_alternates_after_failed_filtered_and_empty_replies(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts += [
        Script(chunks=["Paris."]),
        Script(chunks=["Par"], error=UnavailableError()),
        Script(chunks=["partial"], finish="content_filter"),
        Script(chunks=[]),
        Script(chunks=["ok"]),
    ]
    for question in ("q1", "q2", "q3", "q4", "q5"):
        await run_events(conversation, content=question)
    sent = fake_provider.calls[-1]["messages"]
    assert sent == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "q5"},
    ]
    roles = [m["role"] for m in sent]
    assert all(a != b for a, b in itertools.pairwise(roles))


async def test_retry_answers_an_older_failed_reply_in_its_place(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts += [
        Script(chunks=["Par"], error=UnavailableError()),
        Script(chunks=["Four."]),
        Script(chunks=["Paris."]),
    ]
    await run_events(conversation, content="Capital of France?")
    failed = await last_reply()
    await run_events(conversation, content="2+2?")
    events = await run_events(conversation, action="retry", reply_id=failed.pk)
    assert events[0].reply_id == failed.pk
    assert isinstance(events[-1], services.RunFinished)
    retried = await Message.objects.aget(pk=failed.pk)
    assert (retried.status, retried.content, retried.error) == ("complete", "Paris.", "")
    assert fake_provider.calls[-1]["messages"] == [
        {"role": "user", "content": "Capital of France?"}
    ]
    assert await Message.objects.filter(role="assistant").acount() == 2


async def test_retry_is_refused_for_a_complete_reply_and_another_conversation(
    conversation: Conversation, fake_provider: type, user: User
) -> None:
    await run_events(conversation, content="Hi")
    reply = await last_reply()
    with pytest.raises(ValidationError, match="failed"):
        await sync_to_async(services.reply_prepare)(
            conversation=conversation, action="retry", reply_id=reply.pk
        )
    other = await Conversation.objects.acreate(owner=user, provider="fake", model="fake-small")
    with pytest.raises(ValidationError, match="not in this conversation"):
        await sync_to_async(services.reply_prepare)(
            conversation=other, action="retry", reply_id=reply.pk
        )


# --- text a database refuses ------------------------------------------------------------


async def test_a_reply_with_nul_characters_is_saved_without_them(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["before\u0000after", " \ud800end"]))
    events = await run_events(conversation, content="Hi\u0000 there")
    assert isinstance(events[-1], services.RunFinished)
    assert text_of(events) == "beforeafter end"
    reply = await last_reply()
    assert (reply.status, reply.content) == ("complete", "beforeafter end")
    question = await Message.objects.aget(role="user")
    assert question.content == "Hi there"
    conversation = await Conversation.objects.aget(pk=conversation.pk)
    assert "\x00" not in conversation.title


# --- faults of our own never leave a reply streaming --------------------------------------


async def test_a_bad_event_from_a_provider_ends_the_reply_as_an_error_with_its_text(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["Hello"], raw_chunks=[["not", "text"]]))
    events = await run_events(conversation, content="Hi")
    assert isinstance(events[-1], services.RunFailed)
    assert (events[-1].status, events[-1].kind) == ("error", "unexpected")
    reply = await last_reply()
    assert (reply.status, reply.content, reply.error_kind) == ("error", "Hello", "unexpected")
    assert "TypeError" in reply.error_detail and "TypeError" not in reply.error
    # The conversation is not blocked: the next message goes through.
    await run_events(conversation, content="again")
    assert (await last_reply()).status == "complete"


# --- errors for people, details for operators ----------------------------------------------


async def test_people_get_a_plain_error_and_operators_the_detail(
    conversation: Conversation, fake_provider: type, caplog: pytest.LogCaptureFixture
) -> None:
    """The person's sentence names no setting; the detail goes to the reply's record and
    the log. (The chat page sends the detail to staff only: test_chat_stream.py.)"""
    detail = "invalid API key (check OPENAI_API_KEY)"
    fake_provider.scripts.append(Script(chunks=[], error=AuthenticationError(detail)))
    with caplog.at_level(logging.WARNING, logger="chat.services"):
        events = await run_events(conversation, content="Hi")
    failed = events[-1]
    assert isinstance(failed, services.RunFailed)
    assert "OPENAI_API_KEY" not in failed.message and "credentials" in failed.message
    assert "OPENAI_API_KEY" in failed.detail and failed.kind == "authentication"
    reply = await last_reply()
    assert "OPENAI_API_KEY" in reply.error_detail and reply.error_kind == "authentication"
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1
    line = failures[0].getMessage()
    for part in ("provider=fake", "model=fake-small", "kind=authentication"):
        assert part in line
    assert f"conversation={conversation.pk}" in line


@pytest.mark.parametrize(
    "error",
    [
        UnavailableError("the connection to 127.0.0.1:18997 was lost"),
        ProviderTimeoutError("no answer from 10.1.2.3:8000 within 60 s"),
    ],
    ids=["dropped", "timeout"],
)
async def test_people_never_see_internal_addresses(
    conversation: Conversation, fake_provider: type, error: Exception
) -> None:
    # After some text: a failure before the first token would be retried.
    fake_provider.scripts.append(Script(chunks=["Hal"], error=error))
    events = await run_events(conversation, content="Hi")
    assert isinstance(events[-1], services.RunFailed)
    message = events[-1].message
    assert "127.0.0.1" not in message and "10.1.2.3" not in message
    assert message.startswith("Fake ")


# --- nothing is created when nothing is sent ------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"content": "x" * 50}, {"content": "hi", "model": "no-such-model"}, {"content": "  "}],
    ids=["too-long", "unknown-model", "empty"],
)
def test_a_refused_first_message_creates_no_conversation(
    user: User, fake_provider: type, settings: Any, kwargs: dict[str, Any]
) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 20
    with pytest.raises(ValidationError):
        services.reply_prepare(
            conversation=None, owner=user, action="send", provider="fake", **kwargs
        )
    assert not Conversation.objects.exists() and not Message.objects.exists()


async def test_the_first_message_creates_the_conversation(user: User, fake_provider: type) -> None:
    events = await run_events(None, owner=user, content="Hello there", provider="fake")
    conversation = await Conversation.objects.aget(owner=user)
    assert events[0].conversation_id == conversation.pk
    assert events[0].title == "Hello there"  # the page shows the new conversation's title
    assert conversation.title == "Hello there"
    assert await conversation.messages.acount() == 2


# --- the context left out is said, and remembered ------------------------------------------


def test_the_left_out_note_shows_after_a_reload(user: User, fake_provider: type) -> None:
    from django.test import Client
    from django.urls import reverse

    conversation = Conversation.objects.create(owner=user, provider="fake", model="fake-small")
    Message.objects.create(conversation=conversation, role="user", content="q")
    Message.objects.create(
        conversation=conversation, role="assistant", content="a", context_trimmed=8
    )
    client = Client()
    client.force_login(user)
    html = client.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert "8 earlier messages were left out to fit the model&#x27;s context." in html


async def test_a_continue_that_fails_keeps_the_reply_continuable(
    conversation: Conversation, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["The first half"], finish="length"))
    await run_events(conversation, content="Tell me everything")
    cut = await last_reply()
    fake_provider.scripts.append(Script(chunks=[" and"], error=UnavailableError("dropped")))
    events = await run_events(conversation, action="continue", reply_id=cut.pk)
    failed = events[-1]
    assert isinstance(failed, services.RunFailed)
    assert failed.status == "incomplete" and failed.can_continue
    reply = await Message.objects.aget(pk=cut.pk)
    assert (reply.status, reply.content) == ("incomplete", "The first half and")
    assert reply.can_continue and reply.error
