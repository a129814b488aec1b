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
from chat.providers import UnavailableError
from chat.sse import SSEEvent, parse_sse
from chat.tests.conftest import StartReply
from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = [f"w{i} " for i in range(30)]
WHOLE = "".join(WORDS)


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


async def test_a_run_finishes_with_nobody_following(
    start_reply: StartReply, conversation: Conversation
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.005))
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert (reply.status, reply.content) == ("complete", WHOLE)


async def test_reattaching_mid_reply_gets_the_text_so_far_then_the_rest(
    start_reply: StartReply,
    conversation: Conversation,
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.01))
    await wait_for_text(run, 20)
    events = await follow(run.reply_id)
    assert events[0].event == "snapshot" and events[0].data["text"]
    assert events[0].data["text"] != WHOLE  # it really joined mid-reply
    assert events[-1].event == "done" and events[-1].data["status"] == "complete"
    assert text_of(events) == WHOLE  # nothing lost, nothing doubled


async def test_resuming_after_an_event_id_sends_exactly_what_came_after(
    start_reply: StartReply,
    conversation: Conversation,
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.01))
    first = await follow(run.reply_id, until=3)  # snapshot + 2 deltas, then the tab drops
    resumed = await follow(run.reply_id, after=first[-1].id)
    assert resumed[0].event != "snapshot"
    assert text_of(first) + text_of(resumed) == WHOLE
    assert resumed[0].id > first[-1].id


async def test_several_tabs_follow_one_reply_and_see_the_same_text(
    start_reply: StartReply,
    conversation: Conversation,
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.01))
    await wait_for_text(run, 5)
    tabs = await asyncio.gather(*(follow(run.reply_id) for _ in range(3)))
    assert [text_of(tab) for tab in tabs] == [WHOLE] * 3


async def test_stop_ends_the_reply_for_every_follower(
    start_reply: StartReply, conversation: Conversation
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS * 10, pause=0.01))
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
    start_reply: StartReply,
    conversation: Conversation,
) -> None:
    run = await start_reply(conversation, Script(chunks=["**Done**"]))
    await run.done()
    events = await follow(run.reply_id)
    assert [e.event for e in events] == ["done"]
    assert events[0].data["status"] == "complete"
    assert "<strong>Done</strong>" in events[0].data["html"]


async def test_shutdown_waits_then_saves_running_replies_as_interrupted(
    start_reply: StartReply,
    conversation: Conversation,
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS * 10, pause=0.01))
    await wait_for_text(run, 10)
    hub = services.get_hub()
    await hub.stop(grace=0.1)
    reply = await Message.objects.aget(pk=run.reply_id)
    assert (reply.status, reply.finish_reason) == ("incomplete", "interrupted")
    assert reply.content and (WHOLE * 10).startswith(reply.content)
    assert reply.can_continue  # the person can ask the model to go on
    assert isinstance(run.events[-1], services.RunStopped)
    with pytest.raises(services.ShuttingDown):
        await start_reply(conversation, Script())


async def test_shutdown_lets_a_reply_that_ends_within_the_grace_period_finish(
    start_reply: StartReply,
    conversation: Conversation,
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.005))
    await services.get_hub().stop(grace=5)
    reply = await Message.objects.aget(pk=run.reply_id)
    assert (reply.status, reply.content) == ("complete", WHOLE)


async def test_the_servers_time_limit_cuts_a_reply_and_keeps_its_text(
    start_reply: StartReply, conversation: Conversation, settings: Any
) -> None:
    settings.CHAT_MAX_REPLY_SECONDS = 0.15
    run = await start_reply(conversation, Script(chunks=WORDS * 10, pause=0.01))
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert (reply.status, reply.finish_reason) == ("incomplete", "time_limit")
    assert reply.content and "longer than the server allows" in reply.notice


async def test_the_sidebar_knows_what_is_running_and_what_is_new(
    start_reply: StartReply, conversation: Conversation, user: User
) -> None:
    def statuses() -> dict[str, Any]:
        return selectors.conversation_statuses_for_user(user=user, ids=[conversation.pk])[
            conversation.pk
        ]

    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.01))
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


async def test_a_stopped_reply_is_not_marked_new(
    start_reply: StartReply, conversation: Conversation, user: User
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS * 10, pause=0.01))
    await wait_for_text(run, 5)
    run.stop()
    await run.done()
    await conversation.arefresh_from_db()
    assert conversation.reply_unseen_at is None


async def test_seen_clears_the_mark(
    start_reply: StartReply, conversation: Conversation, user: User
) -> None:
    run = await start_reply(conversation, Script())
    await run.done()
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.post(reverse("chat:seen", args=[conversation.pk]))
    assert response.status_code == 204
    await conversation.arefresh_from_db()
    assert conversation.reply_unseen_at is None


async def test_only_the_owner_can_follow_a_reply(
    start_reply: StartReply, conversation: Conversation
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.01))
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
    start_reply: StartReply, conversation: Conversation, user: User
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.01))
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
    start_reply: StartReply, conversation: Conversation, user: User
) -> None:
    run = await start_reply(conversation, Script())
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


# --- Stop at any moment --------------------------------------------------------------------


async def test_stop_right_after_the_start_saves_the_reply_stopped_for_every_follower(
    start_reply: StartReply, conversation: Conversation, fake_provider: type
) -> None:
    """A Stop that lands before the run's task took its first step (a cancelled task
    that never started runs none of its body) still ends the reply as stopped, saved."""
    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.01))
    assert run.stop()
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert (reply.status, reply.content) == ("stopped", "")
    assert isinstance(run.events[-1], services.RunStopped)
    assert services.get_hub().get(run.reply_id) is None  # the hub let it go
    events = await follow(run.reply_id)
    assert [e.event for e in events] == ["done"] and events[0].data["status"] == "stopped"
    assert fake_provider.calls == []  # the model was never asked


@pytest.mark.parametrize("steps", [1, 2, 5])
async def test_a_stop_before_the_first_token_ends_the_reply_stopped_and_saved(
    start_reply: StartReply, conversation: Conversation, steps: int
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS, first_delay=0.2))
    for _ in range(steps):
        await asyncio.sleep(0)
    reply = await Message.objects.aget(pk=run.reply_id)
    assert await services.reply_stop(reply=reply)
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert reply.status == "stopped"
    assert isinstance(run.events[-1], services.RunStopped) and run.ended


async def test_a_second_stop_changes_nothing(
    start_reply: StartReply, conversation: Conversation
) -> None:
    run = await start_reply(conversation, Script(chunks=WORDS, pause=0.01))
    assert run.stop() and not run.stop("interrupted")
    await run.done()
    assert (await Message.objects.aget(pk=run.reply_id)).status == "stopped"


# --- How long the model thought ------------------------------------------------------------


async def wait_until_thinking(run: services.ReplyRun) -> None:
    for _ in range(500):
        if run.reasoning_time()[1]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the run showed no reasoning")


async def test_the_thinking_time_runs_from_the_first_thought_to_the_first_word(
    start_reply: StartReply, conversation: Conversation
) -> None:
    run = await start_reply(
        conversation, Script(reasoning=["Let me see."], chunks=["Yes", ", it is."], pause=0.3)
    )
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert reply.reasoning == "Let me see."
    # The first word came 0.3 s after the thought; the second, 0.3 s later, is no thinking.
    assert 280 <= reply.reasoning_ms < reply.duration_ms - 250
    assert run.events[-1].reasoning_ms == reply.reasoning_ms
    assert run.reasoning_time() == (reply.reasoning_ms, False)


async def test_a_reply_without_reasoning_has_no_thinking_time(
    start_reply: StartReply, conversation: Conversation
) -> None:
    run = await start_reply(conversation, Script())
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert reply.reasoning_ms is None and run.events[-1].reasoning_ms is None


@pytest.mark.parametrize("ending", ["stop", "interrupted", "error", "thought only"])
async def test_a_reply_that_ended_while_thinking_keeps_its_thinking_time(
    start_reply: StartReply, conversation: Conversation, ending: str
) -> None:
    """Stopped, interrupted, failed, or the model thought and said nothing: the reasoning
    and how long it went on are saved with the reply (to its end)."""
    if ending == "error":
        script = Script(reasoning=["Hmm."], chunks=[], first_delay=0, error=UnavailableError())
    elif ending == "thought only":
        script = Script(reasoning=["Hmm."], chunks=[""], pause=0.2)
    else:
        script = Script(reasoning=["Hmm."], chunks=WORDS, pause=1.0)
    run = await start_reply(conversation, script)
    if ending in ("stop", "interrupted"):
        await wait_until_thinking(run)
        await asyncio.sleep(0.2)
        run.stop(ending)
    await run.done()
    reply = await Message.objects.aget(pk=run.reply_id)
    assert reply.reasoning == "Hmm." and reply.status != "streaming"
    assert reply.reasoning_ms is not None and run.events[-1].reasoning_ms == reply.reasoning_ms
    if ending != "error":
        assert reply.reasoning_ms >= 150


async def test_a_snapshot_says_the_model_is_thinking_and_for_how_long(
    start_reply: StartReply, conversation: Conversation
) -> None:
    run = await start_reply(
        conversation, Script(reasoning=["Let me see."], chunks=["Yes.", " More."], pause=0.6)
    )
    await wait_until_thinking(run)
    await asyncio.sleep(0.2)
    snapshot = (await follow(run.reply_id, until=1))[0]
    assert snapshot.event == "snapshot"
    assert (snapshot.data["reasoning"], snapshot.data["thinking"]) == ("Let me see.", True)
    assert 150 <= snapshot.data["reasoning_ms"] < 600
    await wait_for_text(run, 1)
    snapshot = (await follow(run.reply_id, until=1))[0]
    assert snapshot.data["thinking"] is False and snapshot.data["reasoning_ms"] >= 550
    await run.done()
    done = (await follow(run.reply_id))[-1]
    reply = await Message.objects.aget(pk=run.reply_id)
    assert done.data["reasoning_ms"] == reply.reasoning_ms == snapshot.data["reasoning_ms"]


# --- Waiting for the hub's work --------------------------------------------------------------


async def test_wait_idle_returns_once_every_run_has_ended(
    start_reply: StartReply, conversation: Conversation
) -> None:
    runs = [await start_reply(conversation, Script(chunks=WORDS, pause=0.005)) for _ in range(2)]
    hub = services.get_hub()
    async with asyncio.timeout(5):
        await hub.wait_idle()
    assert all(run.ended for run in runs) and not hub.runs
    async with asyncio.timeout(1):
        await hub.wait_idle()  # nothing to wait for: at once
