"""Temporary chats (issue 13): chats that are never written to the database.

The page keeps the chat in memory and sends all of it with each question
(``replies.reply_prepare_temporary`` checks it and builds a ``PreparedReply`` with
``store=False``, like an API call: no conversation, no message rows, no checkpoints, no
Redis). Only the usage record is written (metering and budgets apply), without a reply
id and without any text.

``temporary_follow`` is the run's stream for the page: the chat page's own SSE events
(``chat_stream.run_follow``: start, delta, reasoning, then done or error), with the
reply's Markdown rendered and sanitized by the server in the ending (a stored reply gets
that from its saved row). The reply belongs to the request that asked for it: nothing
else can follow it, so when that request goes away (the tab closed, Stop gave up waiting,
the connection dropped) the run is stopped and the upstream request cancelled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .chat_stream import run_follow
from .hub import get_hub
from .runs import ReplyRun


async def temporary_follow(run: ReplyRun, *, show_detail: bool = False) -> AsyncIterator[bytes]:
    """SSE bytes of temporary ``run`` (in this process) from its start to its end
    (``run_follow``: heartbeats, and the ending's HTML rendered from the text, since an
    unstored run saves none). Closing the generator before the run ended stops the run:
    nobody else can follow a temporary reply."""
    try:
        async for chunk in run_follow(run, show_detail=show_detail):
            yield chunk
    finally:
        if not run.ended:
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
