"""The reply endpoints as the page uses them (issue 8): a new chat is created only with
an accepted first message, a conversation deleted in another tab answers with a plain
sentence, and the error detail reaches staff only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from django.urls import reverse

from chat.models import Conversation, Message
from chat.providers import AuthenticationError
from chat.tests.fakes.fake_provider import Script
from chat.tests.test_views import sse_events, stream_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.mark.parametrize(
    "fields",
    [
        {"content": "hi", "provider": "fake", "model": "no-such-model"},
        {"content": "   ", "provider": "fake", "model": "fake-small"},
        {"content": "hi", "provider": "nope", "model": "x"},
    ],
    ids=["unknown-model", "blank", "unknown-provider"],
)
def test_a_refused_first_message_leaves_no_new_chat_behind(
    alice_client: Client, fake_provider: type, fields: dict[str, str]
) -> None:
    for _ in range(3):  # every try used to leave an empty "New chat" in the sidebar
        response = alice_client.post(reverse("chat:reply_new"), fields)
        assert response.status_code == 400 and response.json()["error"]
    assert not Conversation.objects.exists()
    page = alice_client.get(reverse("chat:index")).content.decode()
    assert 'data-conversation-id="' not in page.replace('data-conversation-id=""', "")


async def test_the_first_message_creates_the_conversation_and_says_where(
    alice: User, fake_provider: type
) -> None:
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.post(
        reverse("chat:reply_new"),
        {"content": "Hello", "provider": "fake", "model": "fake-small"},
    )
    assert response.status_code == 200
    events = sse_events(await stream_body(response))
    conversation = await Conversation.objects.aget(owner=alice)
    assert response["X-Conversation-Id"] == str(conversation.pk)
    assert response["X-Conversation-Url"] == reverse("chat:conversation", args=[conversation.pk])
    assert response["X-Reply-Url"] == reverse("chat:reply", args=[conversation.pk])
    assert events[-1][0] == "done" and events[0][1]["conversation_id"] == conversation.pk


def test_sending_into_a_deleted_conversation_answers_a_plain_sentence(
    alice_client: Client, alice: User, fake_provider: type
) -> None:
    conversation = Conversation.objects.create(owner=alice, provider="fake", model="fake-small")
    pk = conversation.pk
    conversation.delete()  # in another tab
    response = alice_client.post(reverse("chat:reply", args=[pk]), {"content": "still there?"})
    assert response.status_code == 404
    data = response.json()
    assert data["gone"] is True and "deleted" in data["error"]
    assert not Message.objects.exists()


def _failed_reply(owner: User) -> Message:
    conversation = Conversation.objects.create(owner=owner, provider="fake", model="fake-small")
    Message.objects.create(conversation=conversation, role="user", content="hi")
    return Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="error",
        error="Fake refused this server's credentials. Ask an administrator to check them.",
        error_kind="authentication",
        error_detail="Fake: invalid API key (check FAKE_API_KEY)",
        provider="fake",
        model="fake-small",
    )


@pytest.mark.parametrize("staff", [False, True], ids=["person", "staff"])
def test_the_error_detail_reaches_staff_only(
    alice_client: Client, alice: User, fake_provider: type, staff: bool
) -> None:
    alice.is_staff = staff
    alice.save()
    reply = _failed_reply(alice)
    data = alice_client.get(reverse("chat:message", args=[reply.pk])).json()
    assert ("error_detail" in data) is staff
    page = alice_client.get(reverse("chat:conversation", args=[reply.conversation_id]))
    assert ("FAKE_API_KEY" in page.content.decode()) is staff
    assert "credentials" in page.content.decode()


def test_a_failed_reply_offers_retry_and_a_cut_reply_continue(
    alice_client: Client, alice: User, fake_provider: type
) -> None:
    reply = _failed_reply(alice)
    Message.objects.create(conversation=reply.conversation, role="user", content="more")
    Message.objects.create(
        conversation=reply.conversation,
        role="assistant",
        status="incomplete",
        finish_reason="length",
        content="half",
        provider="fake",
        model="fake-small",
    )
    page = alice_client.get(reverse("chat:conversation", args=[reply.conversation_id]))
    html = page.content.decode()
    # Every failed reply offers Retry (not only the newest); the cut one offers Continue.
    assert html.count('data-action="retry">') == 2
    assert 'data-action="continue">' in html
    assert "token limit" in html


async def test_retry_through_the_endpoint_answers_in_place(
    alice: User, fake_provider: type
) -> None:
    from asgiref.sync import sync_to_async

    reply = await sync_to_async(_failed_reply)(alice)
    client = AsyncClient()
    await client.aforce_login(alice)
    fake_provider.scripts.append(Script(chunks=["Hi!"]))
    response = await client.post(
        reverse("chat:reply", args=[reply.conversation_id]),
        {"action": "retry", "reply_id": reply.pk},
    )
    events = sse_events(await stream_body(response))
    assert events[-1][0] == "done" and events[-1][1]["message_id"] == reply.pk
    await reply.arefresh_from_db()
    assert (reply.status, reply.content, reply.error_detail) == ("complete", "Hi!", "")


async def test_a_provider_error_shown_in_the_stream_has_no_setting_names(
    alice: User, fake_provider: type
) -> None:
    fake_provider.scripts.append(
        Script(chunks=[], error=AuthenticationError("invalid API key (check OPENAI_API_KEY)"))
    )
    conversation = await Conversation.objects.acreate(
        owner=alice, provider="fake", model="fake-small"
    )
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.post(reverse("chat:reply", args=[conversation.pk]), {"content": "x"})
    body = (await stream_body(response)).decode()
    assert "credentials" in body and "OPENAI_API_KEY" not in body


def test_renaming_to_blank_names_the_field(alice_client: Client, alice: User) -> None:
    conversation = Conversation.objects.create(owner=alice, title="Plans", provider="fake")
    response = alice_client.post(
        reverse("chat:rename", args=[conversation.pk]),
        {"title": "   "},
        headers={"X-Requested-With": "fetch"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "The title cannot be empty."
    conversation.refresh_from_db()
    assert conversation.title == "Plans"


async def test_settings_sent_with_the_first_message_apply_to_it(
    alice: User, fake_provider: type
) -> None:
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.post(
        reverse("chat:reply_new"),
        {
            "content": "Hello",
            "provider": "fake",
            "model": "fake-small",
            "system_prompt": "Be brief.",
            "temperature": "0.3",
            "max_tokens": "64",
        },
    )
    await stream_body(response)
    options = fake_provider.calls[-1]["options"]
    assert (options.system_prompt, options.temperature, options.max_tokens) == (
        "Be brief.",
        0.3,
        64,
    )
    conversation = await Conversation.objects.aget(owner=alice)
    assert (conversation.system_prompt, conversation.temperature) == ("Be brief.", 0.3)


def test_out_of_range_settings_with_the_first_message_create_nothing(
    alice_client: Client, fake_provider: type
) -> None:
    response = alice_client.post(
        reverse("chat:reply_new"),
        {"content": "Hello", "provider": "fake", "model": "fake-small", "temperature": "9"},
    )
    assert response.status_code == 400 and "emperature" in response.json()["error"]
    assert not Conversation.objects.exists()


def test_a_plain_form_post_of_the_composer_keeps_the_text_and_says_why(
    alice_client: Client, alice: User, fake_provider: type
) -> None:
    # The page's script did not run: the composer posts to the page itself.
    response = alice_client.post(reverse("chat:index"), {"content": "my long message"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "script did not load" in html
    assert ">my long message</textarea>" in html
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    ("language", "sentence"), [("en", "The message is too long"), ("ru", "Сообщение слишком")]
)
def test_a_message_over_the_limit_is_refused_with_the_sentence_alone(
    alice_client: Client, fake_provider: type, settings: Any, language: str, sentence: str
) -> None:
    # The form field's English name ("Content: ...") used to lead the sentence.
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    response = alice_client.post(
        reverse("chat:reply_new"),
        {"content": "x" * 11, "provider": "fake", "model": "fake-small"},
        HTTP_ACCEPT_LANGUAGE=language,
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(sentence)
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    ("language", "note"),
    [
        ("en", "Stopped before the model answered."),
        ("ru", "Остановлено до того, как модель начала отвечать."),
    ],
)
def test_a_reply_stopped_before_its_first_word_says_so_after_a_reload(
    alice_client: Client, alice: User, fake_provider: type, language: str, note: str
) -> None:
    # It used to be a bare "Stopped" header with nothing under it.
    conversation = Conversation.objects.create(owner=alice, provider="fake", model="fake-small")
    parent = None
    for content in ("", "Half an answer"):
        question = Message.objects.create(
            conversation=conversation, role="user", content="Tell me", parent=parent
        )
        parent = Message.objects.create(
            conversation=conversation,
            role="assistant",
            status="stopped",
            content=content,
            parent=question,
            provider="fake",
            model="fake-small",
        )
    page = alice_client.get(
        reverse("chat:conversation", args=[conversation.pk]), HTTP_ACCEPT_LANGUAGE=language
    )
    html = page.content.decode()
    assert html.count(f'<p class="msg-notice" data-notice data-stopped-note="true">{note}</p>') == 1
    assert f'data-stopped-empty="{note}"' in html  # for the page's script, live
