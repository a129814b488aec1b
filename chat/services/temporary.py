"""Temporary chats (issue 13): chats that are never written to the database.

The page keeps the chat in memory and sends all of it with each question
(``replies.reply_prepare_temporary`` checks it and builds a ``PreparedReply`` with
``store=False``, like an API call: no conversation, no message rows, no checkpoints, no
Redis). Only the usage record is written (metering and budgets apply), without a reply
id and without any text.

``temporary_follow`` is the run's stream for the page: the chat page's own SSE events
(``chat_stream.encode_events``: start, delta, reasoning, then done or error), with the
reply's Markdown rendered and sanitized by the server in the ending (a stored reply gets
that from its saved row). The reply belongs to the request that asked for it: nothing
else can follow it, so when that request goes away (the tab closed, Stop gave up waiting,
the connection dropped) the run is stopped and the upstream request cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from django.conf import settings

from ..markdown import render_markdown
from ..sse import HEARTBEAT
from .chat_stream import encode_events
from .hub import get_hub
from .runs import TERMINAL_EVENTS, ReplyRun


async def temporary_follow(run: ReplyRun, *, show_detail: bool = False) -> AsyncIterator[bytes]:
    """SSE bytes of temporary ``run`` (in this process) from its start to its end, with a
    heartbeat comment when nothing else was sent for CHAT_HEARTBEAT_SECONDS. The ending's
    ``html`` (``partial_html`` for an error) is the text rendered by ``render_markdown``.
    Closing the generator before the run ended stops the run."""
    heartbeat = settings.CHAT_HEARTBEAT_SECONDS
    events = run.events
    cursor = 0
    last_sent = time.monotonic()
    try:
        while True:
            await run.wait(cursor)
            if len(events) > cursor:
                batch = events[cursor:]
                last = batch[-1]
                if isinstance(last, TERMINAL_EVENTS) and not last.html:
                    text = run.snapshot()[0]
                    if text:
                        html = await asyncio.to_thread(render_markdown, text)
                        batch = [*batch[:-1], replace(last, html=html)]
                chunk, ended = encode_events(
                    batch, cursor + 1, reply_id=run.reply_id, show_detail=show_detail
                )
                cursor += len(batch)
                if chunk:
                    yield chunk
                    last_sent = time.monotonic()
                if ended:
                    return
            elif run.ended:
                return
            elif time.monotonic() - last_sent >= heartbeat:
                yield HEARTBEAT
                last_sent = time.monotonic()
    finally:
        if not run.ended:
            # Nobody else can follow a temporary reply: no reader, no reply.
            run.stop("stop")


async def temporary_stop(*, run_number: int, user_id: int) -> bool | None:
    """Stop the temporary run ``run_number`` (negative) of user ``user_id`` if it runs in
    this process (call it in the server's event loop): True when it is stopping now, False
    when it is already ending, None when there is no such run of theirs here (then
    closing its stream stops it)."""
    hub = get_hub()
    hub.start()
    run = hub.get(run_number) if run_number < 0 else None
    if run is None or run.prepared.store or run.prepared.user_id != user_id:
        return None
    return run.stop("stop")
