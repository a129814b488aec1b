"""Run events across workers through Redis (chat/services/broker.py): every event kind
survives the wire; a follower resumes after any event id; Redis being down costs a log
line, not a failed request."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from django.conf import settings

from chat.providers import ReasoningDelta, TextDelta, Usage
from chat.services.broker import RedisBroker, event_from_wire, event_to_wire, stream_key
from chat.services.hub import ReplyHub
from chat.services.runs import RunFailed, RunFinished, RunStarted, RunStopped
from chat.tests.live import free_port

EVENTS: list[Any] = [
    RunStarted(7, 3, 6, "openai", "gpt-x", "Title", 2, "2 earlier messages…", "Before"),
    TextDelta("Привет, "),
    ReasoningDelta("thinking…"),
    Usage(10, 5, 2),
    RunFinished("complete", "stop", "<p>Hi</p>", Usage(10, 5, None), "", False),
    RunFinished("complete", "stop", "<p>Hi</p>", Usage(10, 5, 3), "", False, 12_000),
    RunFailed("Unavailable.", "unavailable", "host said 503", "error", "", "", False),
    RunFailed("Unavailable.", "unavailable", "", "error", "", "", False, 700),
    RunStopped("interrupted", "incomplete", "<p>Half</p>", None, "interrupted", "Note", True),
    RunStopped("stop", "stopped", "<p>Half</p>", None, reasoning_ms=1500),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_run_event_survives_the_wire(event: Any) -> None:
    assert event_from_wire(event_to_wire(event)) == event


async def test_redis_down_costs_a_log_line_not_a_failed_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.WARNING, logger="chat.services"):
        assert await broker.has_run(1) is False
        await broker.request_stop(1)  # no exception: the caller closes the reply itself
        for seq in range(1, 50):
            broker.publish(1, seq, TextDelta("x"))
        await asyncio.sleep(0.2)
        await broker.close()
    publishing = [r for r in caplog.records if "publishing run events" in r.getMessage()]
    assert len(publishing) == 1  # once, not once per batch


@pytest.mark.skipif(not settings.REDIS_URL, reason="runs in the PostgreSQL + Redis pass")
async def test_a_follower_on_another_worker_resumes_after_any_event() -> None:
    publisher, follower = RedisBroker(settings.REDIS_URL), RedisBroker(settings.REDIS_URL)
    reply_id = 900_000 + free_port()
    try:
        for seq, event in enumerate(EVENTS[:5], 1):
            publisher.publish(reply_id, seq, event)
        await asyncio.sleep(0.1)
        assert await follower.has_run(reply_id)
        assert [e for _, e in await follower.history(reply_id)] == EVENTS[:5]
        batches = [batch async for batch in follower.follow(reply_id, after=2)]
        assert [seq for batch in batches for seq, _ in batch] == [3, 4, 5]
        assert 0 < await publisher.redis.ttl(stream_key(reply_id)) <= 600  # ended: expires
    finally:
        await publisher.redis.delete(stream_key(reply_id))
        await publisher.close()
        await follower.close()


# --- The hub's broker and its event loop -------------------------------------------------------


def redis_url() -> str:
    """The real Redis in the PostgreSQL + Redis pass; elsewhere an address where nothing
    listens (the broker then logs that Redis does not answer, and is closed all the same)."""
    return settings.REDIS_URL or f"redis://127.0.0.1:{free_port()}/0"


async def bound_broker(hub: ReplyHub) -> RedisBroker:
    """Start ``hub`` on the running loop; its broker once its Stop listener runs."""
    hub.start()
    await asyncio.sleep(0.05)
    assert hub.broker is not None
    return hub.broker


def test_a_hub_on_a_new_event_loop_leaves_the_old_loops_broker_closed(settings: Any) -> None:
    settings.REDIS_URL = redis_url()
    hub = ReplyHub()
    first = asyncio.run(bound_broker(hub))
    assert first.closed  # its loop ended: the broker was closed on it
    second = asyncio.run(bound_broker(hub))
    assert second is not first and second.closed


def test_a_hub_leaving_a_loop_that_still_runs_closes_its_broker_there(settings: Any) -> None:
    settings.REDIS_URL = redis_url()
    hub = ReplyHub()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        first = asyncio.run_coroutine_threadsafe(bound_broker(hub), loop).result(5)
        assert not first.closed
        asyncio.run(bound_broker(hub))  # the hub moves to this thread's own loop
        deadline = time.monotonic() + 5
        while not first.closed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.closed
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
