"""Replies owned by the server (issue 10), at service level: a run goes on without its
follower, followers re-attach from a snapshot or an event id with no text lost or
doubled, several follow at once, Stop ends it for all, shutdown saves it as
interrupted, the server's time limit cuts it, and the sidebar learns what is running
and what is new. Assertions are on run events and database state."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient
from django.urls import reverse

from chat import selectors, services
from chat.models import Conversation, Message
from chat.sse import SSEEvent, parse_sse
from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = [f"w{i} " for i in range(30)]
WHOLE = "".join(WORDS)


@pytest.fixture
def user() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def conversation(user: User, fake_provider: type) -> Conversation:
    return Conversation.objects.create(owner=user, provider="fake", model="fake-small")


async def start(conversation: Conversation, script: Script, **kwargs: Any) -> services.ReplyRun:
    """Prepare a reply and start its run, with nobody following it."""
    import chat.tests.fakes.fake_provider as fake

    fake.FakeProvider.scripts.append(script)
    prepared = await sync_to_async(services.reply_prepare)(
        conversation=conversation, action="send", content="Go", **kwargs
    )
    return services.get_hub().start_run(prepared)


async def follow(reply_id: int, after: int = 0, *, until: int | None = None) -> list[SSEEvent]:
    """The SSE events a person re-attaching to ``reply_id`` gets (``until``: stop
    reading after that many events)."""
    reply = await Message.objects.aget(pk=reply_id)
    chunks = []
    async for chunk in services.reply_follow(reply=reply, after=after):
        chunks.append(chunk)
        if until is not None and len(parse_sse(chunks)) >= until:
            break
    return parse_sse(chunks)


def text_of(events: list[SSEEvent]) -> str:
    """The reply's text as a page builds it: the snapshot, then each delta."""
    text = ""
    for event in events:
        if event.event == "snapshot":
            text = event.data["text"]
        elif event.event == "delta":
            text += event.data["text"]
    return text


async def wait_for_text(run: services.ReplyRun, minimum: int) -> None:
    for _ in range(500):
        if len(run.snapshot()[0]) >= minimum:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the run produced no text")


async def test_a_run_finishes_with_nobody_following(conversation: Conversation) -> None:
    run = await start(conversation, Script(chunks=WORDS, pause=0.005))
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert (reply.status, reply.content) == ("complete", WHOLE)


async def test_reattaching_mid_reply_gets_the_text_so_far_then_the_rest(
    conversation: Conversation,
) -> None:
    run = await start(conversation, Script(chunks=WORDS, pause=0.01))
    await wait_for_text(run, 20)
    events = await follow(run.reply_id)
    assert events[0].event == "snapshot" and events[0].data["text"]
    assert events[0].data["text"] != WHOLE  # it really joined mid-reply
    assert events[-1].event == "done" and events[-1].data["status"] == "complete"
    assert text_of(events) == WHOLE  # nothing lost, nothing doubled


async def test_resuming_after_an_event_id_sends_exactly_what_came_after(
    conversation: Conversation,
) -> None:
    run = await start(conversation, Script(chunks=WORDS, pause=0.01))
    first = await follow(run.reply_id, until=3)  # snapshot + 2 deltas, then the tab drops
    resumed = await follow(run.reply_id, after=first[-1].id)
    assert resumed[0].event != "snapshot"
    assert text_of(first) + text_of(resumed) == WHOLE
    assert resumed[0].id > first[-1].id


async def test_several_tabs_follow_one_reply_and_see_the_same_text(
    conversation: Conversation,
) -> None:
    run = await start(conversation, Script(chunks=WORDS, pause=0.01))
    await wait_for_text(run, 5)
    tabs = await asyncio.gather(*(follow(run.reply_id) for _ in range(3)))
    assert [text_of(tab) for tab in tabs] == [WHOLE] * 3


async def test_stop_ends_the_reply_for_every_follower(conversation: Conversation) -> None:
    run = await start(conversation, Script(chunks=WORDS * 10, pause=0.01))
    await wait_for_text(run, 10)
    tabs = [asyncio.create_task(follow(run.reply_id)) for _ in range(2)]
    await asyncio.sleep(0.05)
    reply = await Message.objects.aget(pk=run.reply_id)
    assert await services.reply_stop(reply=reply)
    for tab in await asyncio.gather(*tabs):
        assert tab[-1].event == "done" and tab[-1].data["status"] == "stopped"
    reply = await Message.objects.aget(pk=run.reply_id)
    assert reply.status == "stopped" and reply.content and WHOLE * 10 != reply.content


async def test_following_a_finished_reply_gives_its_saved_ending(
    conversation: Conversation,
) -> None:
    run = await start(conversation, Script(chunks=["**Done**"]))
    await run.done()
    events = await follow(run.reply_id)
    assert [e.event for e in events] == ["done"]
    assert events[0].data["status"] == "complete"
    assert "<strong>Done</strong>" in events[0].data["html"]


async def test_shutdown_waits_then_saves_running_replies_as_interrupted(
    conversation: Conversation,
) -> None:
    run = await start(conversation, Script(chunks=WORDS * 10, pause=0.01))
    await wait_for_text(run, 10)
    hub = services.get_hub()
    await hub.stop(grace=0.1)
    reply = await Message.objects.aget(pk=run.reply_id)
    assert (reply.status, reply.finish_reason) == ("incomplete", "interrupted")
    assert reply.content and (WHOLE * 10).startswith(reply.content)
    assert reply.can_continue  # the person can ask the model to go on
    assert isinstance(run.events[-1], services.RunStopped)
    with pytest.raises(services.ShuttingDown):
        await start(conversation, Script())


async def test_shutdown_lets_a_reply_that_ends_within_the_grace_period_finish(
    conversation: Conversation,
) -> None:
    run = await start(conversation, Script(chunks=WORDS, pause=0.005))
    await services.get_hub().stop(grace=5)
    reply = await Message.objects.aget(pk=run.reply_id)
    assert (reply.status, reply.content) == ("complete", WHOLE)


async def test_the_servers_time_limit_cuts_a_reply_and_keeps_its_text(
    conversation: Conversation, settings: Any
) -> None:
    settings.CHAT_MAX_REPLY_SECONDS = 0.15
    run = await start(conversation, Script(chunks=WORDS * 10, pause=0.01))
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert (reply.status, reply.finish_reason) == ("incomplete", "time_limit")
    assert reply.content and "longer than the server allows" in reply.notice


async def test_the_sidebar_knows_what_is_running_and_what_is_new(
    conversation: Conversation, user: User
) -> None:
    def statuses() -> dict[str, Any]:
        return selectors.conversation_statuses_for_user(user=user, ids=[conversation.pk])[
            conversation.pk
        ]

    run = await start(conversation, Script(chunks=WORDS, pause=0.01))
    now = await sync_to_async(statuses)()
    assert (now["running"], now["unseen"]) == (True, False)
    await run.done()
    now = await sync_to_async(statuses)()
    assert (now["running"], now["unseen"]) == (False, True)
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(reverse("chat:status") + f"?ids={conversation.pk},999999")
    assert response.json() == {
        "conversations": {str(conversation.pk): {"running": False, "unseen": True, "title": "Go"}}
    }
    await client.get(reverse("chat:conversation", args=[conversation.pk]))  # opened: seen
    now = await sync_to_async(statuses)()
    assert now["unseen"] is False


async def test_a_stopped_reply_is_not_marked_new(conversation: Conversation, user: User) -> None:
    run = await start(conversation, Script(chunks=WORDS * 10, pause=0.01))
    await wait_for_text(run, 5)
    run.stop()
    await run.done()
    await conversation.arefresh_from_db()
    assert conversation.reply_unseen_at is None


async def test_seen_clears_the_mark(conversation: Conversation, user: User) -> None:
    run = await start(conversation, Script())
    await run.done()
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.post(reverse("chat:seen", args=[conversation.pk]))
    assert response.status_code == 204
    await conversation.arefresh_from_db()
    assert conversation.reply_unseen_at is None


async def test_only_the_owner_can_follow_a_reply(conversation: Conversation) -> None:
    run = await start(conversation, Script(chunks=WORDS, pause=0.01))
    mallory = await sync_to_async(User.objects.create_user)("mallory", password="pw-m-123456")
    client = AsyncClient()
    await client.aforce_login(mallory)
    response = await client.get(reverse("chat:events", args=[run.reply_id]))
    assert response.status_code == 404
    response = await client.post(reverse("chat:stop", args=[run.reply_id]))
    assert response.status_code == 404
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert reply.status == "complete"


async def test_the_events_view_resumes_from_last_event_id(
    conversation: Conversation, user: User
) -> None:
    run = await start(conversation, Script(chunks=WORDS, pause=0.01))
    await run.done()
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get(
        reverse("chat:events", args=[run.reply_id]), headers={"Last-Event-ID": "3"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert parse_sse(body)[-1].event == "done"


async def test_no_new_reply_is_taken_while_shutting_down(
    conversation: Conversation, user: User
) -> None:
    hub = services.get_hub()
    hub.start()
    await hub.stop(grace=0)
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.post(
        reverse("chat:reply", args=[conversation.pk]), {"content": "hello"}
    )
    assert response.status_code == 503
    assert "restarting" in response.json()["error"]
    assert not await Message.objects.filter(conversation=conversation).aexists()


async def test_a_malformed_event_id_gets_a_clear_400(
    conversation: Conversation, user: User
) -> None:
    run = await start(conversation, Script())
    await run.done()
    client = AsyncClient()
    await client.aforce_login(user)
    url = reverse("chat:events", args=[run.reply_id])
    for response in (
        await client.get(url + "?after=abc"),
        await client.get(url, headers={"Last-Event-ID": "-1"}),
    ):
        assert response.status_code == 400
        assert "whole number" in response.json()["error"]
