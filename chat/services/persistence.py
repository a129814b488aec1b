"""Saving a reply run to the database: the consumer that turns run events into the
Message row. Database work happens in short steps, never while a run waits on its
provider: partial text in batched checkpoints, the outcome in one UPDATE at the end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import OperationalError, connection
from django.db.models import Q
from django.utils import timezone

from ..dbtext import storable_text
from ..markdown import render_markdown
from ..models import Conversation, Message
from ..outcomes import empty_reply_message
from ..providers import Finish, FinishReason, Usage

logger = logging.getLogger("chat.services")

P = ParamSpec("P")
R = TypeVar("R")

# Waits between attempts to save an outcome when the database is busy (seconds).
SAVE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


def connection_release() -> None:
    """Give this thread's database connection back after a short step: to psycopg's
    pool on PostgreSQL, so no connection is held while a stream waits on its upstream.
    A SQLite connection is a file handle, not a server's slot: the thread keeps it
    (opening one costs about a millisecond, closing it another), unless it broke."""
    if connection.vendor == "sqlite":
        connection.close_if_unusable_or_obsolete()
    else:
        connection.close()


def db_step(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run one short piece of database work in a worker thread, then release the
    connection (``connection_release``)."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        finally:
            connection_release()

    return sync_to_async(run, thread_sensitive=False)


def outcome_of(*, text: str, reasoned: bool, finish: Finish | None, label: str) -> dict[str, str]:
    """Status, finish reason and the person's message for a stream that ended by itself.
    Complete only when the provider said the model finished normally; with text but
    another reason, incomplete (the text kept, the reason shown); with no text, an error
    that says why. Keys: status, finish_reason, and error, error_kind, error_detail as
    they apply."""
    reason = finish.reason if finish else FinishReason.CUT_OFF
    detail = finish.detail if finish else ""
    if text.strip():
        if finish is not None and finish.is_normal:
            return {"status": Message.Status.COMPLETE, "finish_reason": reason}
        return {
            "status": Message.Status.INCOMPLETE,
            "finish_reason": reason,
            "error_detail": detail,
        }
    return {
        "status": Message.Status.ERROR,
        "finish_reason": reason,
        "error": empty_reply_message(reason=reason, detail=detail, reasoned=reasoned, label=label),
        "error_kind": "empty",
        "error_detail": detail,
    }


def save_outcome(
    reply_id: int,
    *,
    text: str,
    status: str,
    reasoning: str = "",
    finish_reason: str = "",
    error: str = "",
    error_kind: str = "",
    error_detail: str = "",
    usage: Usage | None = None,
    ttft_ms: int | None = None,
    duration_ms: int | None = None,
    reasoning_ms: int | None = None,
    answered_by: tuple[str, str] | None = None,
    fallback: list[dict[str, str]] | None = None,
) -> str:
    """Write a reply's outcome (one UPDATE of the message, one of its conversation's
    "unseen reply" mark) and return the reply's sanitized HTML. ``ttft_ms``,
    ``duration_ms`` and ``reasoning_ms`` (how long the model thought before its answer
    began; None: no reasoning) are milliseconds. ``answered_by`` (provider, model) and
    ``fallback`` (the models that failed first, ``Message.fallback``) are given when
    another model answered than the one chosen."""
    text = storable_text(text)
    html = render_markdown(text) if text else ""
    fields: dict[str, Any] = {
        "content": text,
        "content_html": html,
        "reasoning": storable_text(reasoning),
        "status": status,
        "finish_reason": finish_reason,
        "error": storable_text(error),
        "error_kind": error_kind,
        "error_detail": storable_text(error_detail),
        "time_to_first_token_ms": ttft_ms,
        "duration_ms": duration_ms,
        "reasoning_ms": reasoning_ms,
    }
    if answered_by is not None:
        fields["provider"], fields["model"] = answered_by
        fields["fallback"] = fallback or None
    if usage is not None:
        fields["input_tokens"] = usage.input_tokens
        fields["output_tokens"] = usage.output_tokens
        fields["reasoning_tokens"] = usage.reasoning_tokens
    Message.objects.filter(pk=reply_id).update(**fields)
    if status != Message.Status.STOPPED:  # a reply the person stopped is not news to them
        Conversation.objects.filter(messages__pk=reply_id).update(reply_unseen_at=timezone.now())
    return html


async def save_outcome_patiently(reply_id: int, **outcome: Any) -> str:
    """``save_outcome`` in a worker thread, tried again while the database is busy
    (SQLite locked, no free PostgreSQL connection); raises OperationalError when the
    last attempt fails too (the reply is then closed later as stale)."""
    for delay in (*SAVE_RETRY_DELAYS, None):
        try:
            return await db_step(save_outcome)(reply_id, **outcome)
        except OperationalError:
            if delay is None:
                logger.exception("reply %s: could not save its outcome", reply_id)
                raise
            logger.warning("reply %s: database busy, saving again in %.1fs", reply_id, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def save_checkpoints(texts: dict[int, str]) -> None:
    """Save the partial text of replies still streaming, ``{reply id: text}``, in one
    statement (a reply that has finished is never overwritten)."""
    replies = [
        Message(pk=reply_id, content=storable_text(text)) for reply_id, text in texts.items()
    ]
    Message.objects.filter(status=Message.Status.STREAMING).bulk_update(
        replies, ["content"], batch_size=500
    )


class CheckpointWriter:
    """Batches partial-reply saves of every run in the process: with a thousand runs, one
    database write at a time instead of a thousand, and no run waits on it."""

    def __init__(self) -> None:
        self._pending: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None

    def save_later(self, reply_id: int, text: str) -> None:
        """Queue ``text`` as reply ``reply_id``'s checkpoint (a newer one replaces it)."""
        self._pending[reply_id] = text
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write())

    def forget(self, reply_id: int) -> None:
        """Drop a queued checkpoint (the reply's outcome is being saved instead)."""
        self._pending.pop(reply_id, None)

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await db_step(save_checkpoints)(batch)
            except Exception:
                logger.warning("saving %d partial replies failed", len(batch), exc_info=True)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=10)


def streaming_replies_close(*, reply_ids: list[int], status: str, **fields: Any) -> int:
    """Close replies left streaming (their run is gone) with ``status``, keeping the
    text of their last checkpoint. Returns how many were closed."""
    return Message.objects.filter(Q(pk__in=reply_ids), status=Message.Status.STREAMING).update(
        status=status, **fields
    )
