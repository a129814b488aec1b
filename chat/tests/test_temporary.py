"""Temporary chats (issue 13): the page sends the whole chat with each question to
POST /t/reply/ and gets the reply as the chat page's events; nothing of the chat is
written (no conversation, no message, no attachment) and its text is never logged. The
usage record is written (budgets apply), without a reply."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import AsyncClient, Client
from django.urls import reverse

from access.models import ModelAccessRule
from chat import services
from chat.models import Attachment, Conversation, Message
from chat.providers import AuthenticationError
from chat.sse import parse_sse
from chat.tests.fakes.fake_provider import Script
from usage.models import Budget, BudgetReservation, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "zebra-marmalade-7731"  # a question's text that must never be stored or logged
URL = "/t/reply/"


@pytest.fixture(autouse=True)
def _no_default_budgets(settings: Any) -> None:
    for name in (
        "CHAT_BUDGET_DAILY_COST",
        "CHAT_BUDGET_MONTHLY_COST",
        "CHAT_BUDGET_DAILY_TOKENS",
        "CHAT_BUDGET_MONTHLY_TOKENS",
        "CHAT_BUDGET_REQUESTS_PER_MINUTE",
    ):
        setattr(settings, name, None)


@pytest.fixture
def alice(fake_provider: type) -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def body(messages: list[dict[str, str]] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "provider": "fake",
        "model": "fake-small",
        "messages": messages if messages is not None else [{"role": "user", "content": SECRET}],
        **fields,
    }


def post(client: Client, payload: Any) -> Any:
    data = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    return client.post(URL, data, content_type="application/json")


async def apost(client: AsyncClient, payload: Any) -> Any:
    return await client.post(URL, json.dumps(payload), content_type="application/json")


async def read_events(response: Any) -> list[tuple[str, Any]]:
    chunks = [chunk async for chunk in response.streaming_content]
    return [(event.event, event.data) for event in parse_sse(b"".join(chunks))]


@pytest.fixture
async def alice_async(alice: User) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(alice)
    return client


def nothing_stored() -> bool:
    return not (
        Conversation.objects.exists() or Message.objects.exists() or Attachment.objects.exists()
    )


# --- the exchange -------------------------------------------------------------------------


async def test_a_temporary_reply_streams_as_the_chat_page_events_and_nothing_is_stored(
    alice_async: AsyncClient, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["**Hello**", " there"]))
    response = await apost(alice_async, body())
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert "no-store" in response["Cache-Control"]
    events = await read_events(response)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    assert events[0][1]["message_id"] < 0  # a run number, not a saved reply
    text = "".join(data["text"] for name, data in events if name == "delta")
    assert text == "**Hello** there"
    done = events[-1][1]
    assert done["status"] == "complete"
    assert "<strong>Hello</strong>" in done["html"]  # rendered by the server, sanitized
    assert await asyncio.to_thread(nothing_stored)


async def test_the_whole_chat_so_far_goes_to_the_model_with_the_settings(
    alice_async: AsyncClient, fake_provider: type
) -> None:
    chat = [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second question"},
    ]
    response = await apost(
        alice_async, body(chat, system_prompt="Be brief.", temperature="0.3", max_tokens=50)
    )
    await read_events(response)
    call = fake_provider.calls[-1]
    assert call["messages"] == chat
    assert call["options"].system_prompt == "Be brief."
    assert call["options"].temperature == 0.3 and call["options"].max_tokens == 50


async def test_the_usage_record_is_written_without_a_reply(
    alice_async: AsyncClient, alice: User, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(usage=(12, 5)))
    await read_events(await apost(alice_async, body()))
    record = await UsageRecord.objects.aget()
    assert record.user_id == alice.pk and record.reply_id is None
    assert record.source == "chat"  # asked on the chat page, not through the API
    assert (record.provider, record.model) == ("fake", "fake-small")
    assert (record.input_tokens, record.output_tokens) == (12, 5)
    assert record.outcome == "complete"
    assert not await BudgetReservation.objects.filter(user=alice).aexists()


async def test_stop_ends_the_reply_as_stopped_with_its_text_so_far(
    alice_async: AsyncClient, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["One", " two", " three"], pause=0.3))
    response = await apost(alice_async, body())
    stream = response.streaming_content
    first = await anext(stream)
    run = next(e.data for e in parse_sse(first) if e.event == "start")["message_id"]
    stopped = await alice_async.post(reverse("chat:temporary_stop", args=[run]))
    assert stopped.status_code == 200 and stopped.json() == {"stopping": True}
    rest = b"".join([first, *[chunk async for chunk in stream]])
    done = [event.data for event in parse_sse(rest) if event.event == "done"][-1]
    assert done["status"] == "stopped"
    assert fake_provider.cancelled == [True]  # the upstream request was cancelled


async def test_someone_else_cannot_stop_a_temporary_reply(
    alice_async: AsyncClient, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=["One", " two"], pause=0.2))
    response = await apost(alice_async, body())
    stream = response.streaming_content
    first = await anext(stream)
    run = next(e.data for e in parse_sse(first) if e.event == "start")["message_id"]
    bob = await User.objects.acreate_user("bob", password="pw-bob-12345")
    other = AsyncClient()
    await other.aforce_login(bob)
    refused = await other.post(reverse("chat:temporary_stop", args=[run]))
    assert refused.status_code == 404
    rest = b"".join([first, *[chunk async for chunk in stream]])
    assert [e.data for e in parse_sse(rest) if e.event == "done"][-1]["status"] == "complete"


async def test_closing_the_stream_stops_the_reply_and_its_upstream_request(
    alice_async: AsyncClient, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=[f"w{i} " for i in range(200)], pause=0.02))
    response = await apost(alice_async, body())
    received: list[bytes] = []

    async def client() -> None:
        async for chunk in response.streaming_content:
            received.append(chunk)

    reading = asyncio.create_task(client())
    async with asyncio.timeout(5):
        while len(received) < 3:
            await asyncio.sleep(0.01)
    # The tab went away: Django's ASGI handler cancels the task sending the response,
    # then closes the response.
    reading.cancel()
    response.close()
    async with asyncio.timeout(5):
        await services.get_hub().wait_idle()
    assert fake_provider.cancelled == [True]
    assert len(b"".join(received)) < 200 * 20  # it did not run to its end
    record = await UsageRecord.objects.aget()
    assert record.outcome == "stopped" and record.reply_id is None


async def test_a_failed_reply_ends_with_the_error_sentence(
    alice_async: AsyncClient, fake_provider: type
) -> None:
    fake_provider.scripts.append(Script(chunks=[], error=AuthenticationError("invalid API key")))
    events = await read_events(await apost(alice_async, body()))
    assert events[-1][0] == "error" and events[-1][1]["message"]
    assert await asyncio.to_thread(nothing_stored)


# --- refusals -----------------------------------------------------------------------------


def test_the_budget_refuses_with_its_reason_and_no_reply_runs(
    alice_client: Client, alice: User, fake_provider: type
) -> None:
    Budget.objects.create(user=alice, max_requests_per_minute=1)
    UsageRecord.objects.create(
        user=alice, source="api", provider="fake", model="fake-small", outcome="complete"
    )
    response = post(alice_client, body())
    assert response.status_code == 400
    assert "requests in the last minute" in response.json()["error"]
    assert fake_provider.calls == []
    assert not BudgetReservation.objects.exists()
    assert nothing_stored()


def test_a_model_the_persons_groups_may_not_use_is_refused(
    alice_client: Client, alice: User, fake_provider: type
) -> None:
    group = Group.objects.create(name="interns")
    group.user_set.add(alice)
    ModelAccessRule.objects.create(group=group, provider="fake", model_pattern="fake-small")
    response = post(alice_client, body(model="fake-large"))
    assert response.status_code == 400
    assert "may not use fake-large" in response.json()["error"]
    assert fake_provider.calls == []


LONG = "x" * 101


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        (body(messages=[]), "no message to answer"),
        ({"provider": "fake", "model": "fake-small"}, "no message to answer"),
        (body([{"role": "assistant", "content": "Hi"}]), "Message 1 should be yours"),
        (
            body([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
            "Message 2 should be the model's reply",
        ),
        (
            body([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
            "last message must be yours",
        ),
        (body([{"role": "system", "content": "a"}]), "Message 1 is not a message"),
        (body([{"role": "user", "content": 5}]), "Message 1 is not a message"),
        (body(["hello"]), "Message 1 is not a message"),
        (body([{"role": "user", "content": "   "}]), "Message 1: The message is empty."),
        (body([{"role": "user", "content": LONG}]), "Message 1: The message is too long"),
        (
            body([{"role": "assistant" if i % 2 else "user", "content": "a"} for i in range(201)]),
            "too long (201 messages; the limit is 200)",
        ),
        (body(temperature=7), "Temperature"),
        (body(max_tokens="many"), "Max tokens"),
        (body(system_prompt=["x"]), "system prompt must be text"),
        (body(provider="nope"), "Unknown provider"),
        (body(model="no-such-model"), "no-such-model"),
        (body(model=["fake-small"]), "named by text"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-messages",
        "messages-missing",
        "starts-with-a-reply",
        "two-questions-in-a-row",
        "ends-with-a-reply",
        "system-role",
        "content-not-text",
        "message-not-an-object",
        "blank-question",
        "question-too-long",
        "too-many-messages",
        "temperature-out-of-range",
        "max-tokens-not-a-number",
        "system-prompt-not-text",
        "unknown-provider",
        "unknown-model",
        "model-not-text",
    ],
)
def test_invalid_requests_are_refused_with_a_clear_sentence(
    alice_client: Client, fake_provider: type, settings: Any, payload: Any, says: str
) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 100
    response = post(alice_client, payload)
    assert response.status_code == 400
    assert says in response.json()["error"]
    assert fake_provider.calls == []
    assert nothing_stored() and not UsageRecord.objects.exists()


@pytest.mark.parametrize("name", ["reply", "stop"])
def test_anonymous_people_are_sent_to_sign_in(
    client: Client, fake_provider: type, name: str
) -> None:
    url = URL if name == "reply" else reverse("chat:temporary_stop", args=[-1])
    response = client.post(url, json.dumps(body()), content_type="application/json")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert fake_provider.calls == []


def test_only_post_is_accepted(alice_client: Client) -> None:
    assert alice_client.get(URL).status_code == 405


# --- privacy ------------------------------------------------------------------------------


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


async def test_the_chats_text_never_reaches_the_logs(
    alice_async: AsyncClient, fake_provider: type, every_log: pytest.LogCaptureFixture
) -> None:
    answer = "quokka-lantern-5519"
    fake_provider.scripts.append(Script(chunks=[answer]))
    await read_events(await apost(alice_async, body()))
    chat = [
        {"role": "user", "content": SECRET},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": f"{SECRET} again"},
    ]
    fake_provider.scripts.append(Script(chunks=[], error=AuthenticationError("invalid API key")))
    await read_events(await apost(alice_async, body(chat)))
    refused = await apost(alice_async, body([*chat, {"role": "user", "content": SECRET}]))
    assert refused.status_code == 400
    assert every_log.records  # the run's failure was logged, without the chat's text
    assert SECRET not in every_log.text and answer not in every_log.text


# --- the page -----------------------------------------------------------------------------


def test_the_page_offers_a_temporary_chat_toggle_off_by_default(alice_client: Client) -> None:
    html = alice_client.get(reverse("chat:index")).content.decode()
    assert 'id="temporary-button" aria-pressed="false"' in html
    assert 'id="temporary-banner" role="status" hidden' in html


def test_temporary_1_opens_a_new_chat_as_temporary_with_its_banner(alice_client: Client) -> None:
    html = alice_client.get(reverse("chat:index") + "?temporary=1").content.decode()
    assert 'id="temporary-button" aria-pressed="true"' in html
    assert 'id="temporary-banner" role="status">' in html
    assert "Temporary chat: not saved. Closing or reloading this page loses it." in html


def test_a_saved_conversation_is_never_shown_as_temporary(
    alice_client: Client, alice: User
) -> None:
    conversation = Conversation.objects.create(owner=alice, provider="fake", model="fake-small")
    url = reverse("chat:conversation", args=[conversation.pk]) + "?temporary=1"
    html = alice_client.get(url).content.decode()
    assert 'id="temporary-button" aria-pressed="false"' in html
    assert 'id="temporary-banner" role="status" hidden' in html
