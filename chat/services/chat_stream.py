"""The chat page's stream: run events encoded as Server-Sent Events (see ``chat/sse.py``).

Events, each with ``id: N`` (the run's sequence number of the last run event it holds):
``start``; ``fallback`` {provider, model, label, note} when another model answers
because the chosen one failed before its first token; ``delta`` {text} and
``reasoning`` {text} (consecutive pieces that piled up while the client was behind go
out as one event); then ``done`` (status complete,
incomplete or stopped, with the finish reason, notice, saved HTML, token counts and
``reasoning_ms``, the thinking time, None without reasoning) or ``error`` (with
``reasoning_ms`` when the model thought before it failed). A follower that re-attaches
(``reply_follow``) first gets ``snapshot`` {text, reasoning, reasoning_ms, thinking}
with the id it reaches, then the events after it. Following never affects the run: a
follower that goes away just stops reading.

The chat page's POST starts a run with ``hub.start_run`` and follows it with
``run_follow``, like any other follower.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from django.conf import settings

from ..markdown import render_markdown
from ..models import Message
from ..providers import ReasoningDelta, TextDelta, Usage
from ..sse import HEARTBEAT, sse_event
from .fallback import fallback_note
from .hub import get_hub
from .persistence import db_step
from .runs import (
    TERMINAL_EVENTS,
    ReplyRun,
    RunFailed,
    RunFallback,
    RunFinished,
    RunStarted,
    RunStopped,
)

# How long a follower waits for a reply marked streaming to show up in this process or
# in Redis before it reads the database instead (its run may be starting right now).
APPEAR_SECONDS = 3.0


def encode_events(
    events: list[Any], first_seq: int, *, reply_id: int, show_detail: bool
) -> tuple[bytes, bool]:
    """SSE bytes for ``events`` (numbered from ``first_seq``), and whether the last one
    ended the run. Consecutive text (or reasoning) pieces become one event."""
    out: list[bytes] = []
    ended = False
    pending_kind: type | None = None
    pending: list[str] = []
    seq = first_seq - 1
    for seq, event in enumerate(events, first_seq):
        kind = type(event)
        if kind is pending_kind:
            pending.append(event.text)
            continue
        if pending:
            out.append(_pieces_event(pending_kind, pending, seq - 1))
            pending, pending_kind = [], None
        if kind is TextDelta or kind is ReasoningDelta:
            pending_kind, pending = kind, [event.text]
        elif kind is Usage:
            continue
        elif kind is RunFallback:
            out.append(
                sse_event(
                    "fallback",
                    {
                        "provider": event.provider,
                        "model": event.model,
                        "label": event.label,
                        "note": event.note,
                    },
                    event_id=seq,
                )
            )
        else:
            out.append(_ending_or_start(event, seq, reply_id=reply_id, show_detail=show_detail))
            ended = kind is not RunStarted
    if pending:
        out.append(_pieces_event(pending_kind, pending, seq))
    return b"".join(out), ended


def _pieces_event(kind: type | None, pieces: list[str], seq: int) -> bytes:
    name = "delta" if kind is TextDelta else "reasoning"
    text = pieces[0] if len(pieces) == 1 else "".join(pieces)
    return sse_event(name, {"text": text}, event_id=seq)


def _usage_fields(usage: Usage | None) -> dict[str, int | None]:
    return {
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "reasoning_tokens": usage.reasoning_tokens if usage else None,
    }


def _ending_or_start(event: Any, seq: int, *, reply_id: int, show_detail: bool) -> bytes:
    kind = type(event)
    if kind is RunStarted:
        return sse_event(
            "start",
            {
                "message_id": event.reply_id,
                "user_message_id": event.user_message_id,
                "conversation_id": event.conversation_id,
                "provider": event.provider,
                "model": event.model,
                "title": event.title,
                "trimmed": event.trimmed,
                "trimmed_note": event.trimmed_note,
                "continuing": bool(event.prefix),
            },
            event_id=seq,
        )
    if kind is RunFailed or (kind is RunStopped and event.status == Message.Status.ERROR):
        data: dict[str, Any] = {
            "message": event.message,
            "message_id": reply_id,
            "partial_html": event.html,
            "status": event.status,
            "can_continue": event.can_continue,
        }
        if event.reasoning_ms is not None:  # the model thought before it failed
            data["reasoning_ms"] = event.reasoning_ms
        if show_detail and kind is RunFailed and event.detail:
            data["detail"] = event.detail
        if kind is RunFailed and event.fallback_note:
            data["fallback_note"] = event.fallback_note  # replaces "Answered by ..."
        return sse_event("error", data, event_id=seq)
    assert kind is RunFinished or kind is RunStopped
    return sse_event(
        "done",
        {
            "message_id": reply_id,
            "status": event.status,
            "html": event.html,
            **_usage_fields(event.usage),
            "finish_reason": event.finish_reason,
            "notice": event.notice,
            "can_continue": event.can_continue,
            "reasoning_ms": event.reasoning_ms,
        },
        event_id=seq,
    )


async def run_follow(
    run: ReplyRun, *, after: int = 0, snapshot: bool = False, show_detail: bool = False
) -> AsyncIterator[bytes]:
    """SSE bytes of a run of this process, from event ``after`` on (with a snapshot of
    the text so far first when ``snapshot``), until its end."""
    heartbeat = settings.CHAT_HEARTBEAT_SECONDS
    cursor = after
    if snapshot:
        text, reasoning, cursor = run.snapshot()
        reasoning_ms, thinking = run.reasoning_time()
        yield _snapshot_event(run, text, reasoning, cursor, reasoning_ms, thinking)
    last_sent = time.monotonic()
    events = run.events
    while True:
        await run.wait(cursor)
        if len(events) > cursor:
            batch = events[cursor:]
            count = len(batch)
            if not run.prepared.store:
                batch = await _ending_rendered(run, batch)
            chunk, ended = encode_events(
                batch, cursor + 1, reply_id=run.reply_id, show_detail=show_detail
            )
            cursor += count
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


async def _ending_rendered(run: ReplyRun, batch: list[Any]) -> list[Any]:
    """``batch`` with its ending's ``html`` filled in from the run's text: a run that is
    not stored (a temporary chat) saves nothing, so its ending carries no saved HTML."""
    last = batch[-1]
    if isinstance(last, TERMINAL_EVENTS) and not last.html:
        text = run.snapshot()[0]
        if text:
            html = await asyncio.to_thread(render_markdown, text)
            return [*batch[:-1], replace(last, html=html)]
    return batch


def _snapshot_event(
    run: ReplyRun,
    text: str,
    reasoning: str,
    seq: int,
    reasoning_ms: int | None,
    thinking: bool,
) -> bytes:
    return sse_event(
        "snapshot",
        {
            "message_id": run.reply_id,
            "text": text,
            "reasoning": reasoning,
            "reasoning_ms": reasoning_ms,
            "thinking": thinking,
            "provider": run.provider,
            "model": run.model,
            "fallback_note": fallback_note(run.fallback, model=run.model),
            "status": Message.Status.STREAMING,
        },
        event_id=seq,
    )


async def reply_follow(
    *, reply: Message, after: int = 0, show_detail: bool = False
) -> AsyncIterator[bytes]:
    """SSE bytes for a person re-attaching to ``reply`` (already checked to be theirs):
    followed live wherever its run is (this process, or another worker through Redis);
    a reply that has ended gets its final event from the database. ``after`` 0 starts
    with a snapshot of the text so far; N > 0 resumes after event N."""
    hub = get_hub()
    hub.start()
    deadline = time.monotonic() + APPEAR_SECONDS
    while True:
        run = hub.get(reply.pk)
        if run is not None:
            async for chunk in run_follow(
                run, after=after, snapshot=after == 0, show_detail=show_detail
            ):
                yield chunk
            return
        if hub.broker is not None and await hub.broker.has_run(reply.pk):
            async for chunk in _redis_follow(hub, reply, after, show_detail):
                yield chunk
            return
        current = await db_step(Message.objects.filter(pk=reply.pk).first)()
        if current is None:
            return
        if current.status != Message.Status.STREAMING:
            yield _final_from_database(current, show_detail=show_detail)
            return
        if time.monotonic() > deadline:
            # Its run is nowhere to be seen (its worker died): show what was saved,
            # and look again now and then until someone closes it.
            yield sse_event(
                "snapshot",
                {
                    "message_id": current.pk,
                    "text": current.content,
                    "reasoning": current.reasoning,
                    "reasoning_ms": None,
                    "thinking": False,
                    "provider": current.provider,
                    "model": current.model,
                    "status": current.status,
                },
            )
            deadline = float("inf")
            after = 0
        await asyncio.sleep(0.25 if deadline != float("inf") else 2.0)


async def _redis_follow(
    hub: Any, reply: Message, after: int, show_detail: bool
) -> AsyncIterator[bytes]:
    heartbeat = settings.CHAT_HEARTBEAT_SECONDS
    if after == 0:
        history = await hub.broker.history(reply.pk)
        started = next((e for _, e in history if type(e) is RunStarted), None)
        fell_back = [e for _, e in history if type(e) is RunFallback]
        new_text = "".join(e.text for _, e in history if type(e) is TextDelta)
        reasoning = "".join(e.text for _, e in history if type(e) is ReasoningDelta)
        text = started.prefix + new_text if started is not None else new_text
        after = history[-1][0] if history else 0
        ended = history and isinstance(history[-1][1], (RunFinished, RunFailed, RunStopped))
        # Events carry no times: the thinking time so far is not known here (the page
        # says "Thinking…" without counting; the ending carries the measured time).
        yield sse_event(
            "snapshot",
            {
                "message_id": reply.pk,
                "text": text,
                "reasoning": reasoning,
                "reasoning_ms": None,
                "thinking": bool(reasoning) and not new_text,
                "provider": fell_back[-1].provider if fell_back else reply.provider,
                "model": fell_back[-1].model if fell_back else reply.model,
                "fallback_note": fell_back[-1].note if fell_back else "",
                "status": Message.Status.STREAMING,
            },
            event_id=after,
        )
        if ended:
            chunk, _ = encode_events(
                [history[-1][1]], after, reply_id=reply.pk, show_detail=show_detail
            )
            yield chunk
            return
    last_sent = time.monotonic()
    async for batch in hub.broker.follow(reply.pk, after):
        if not batch:
            if not hub.accepting:
                return  # this worker is shutting down: the page re-attaches elsewhere
            if time.monotonic() - last_sent >= heartbeat:
                yield HEARTBEAT
                last_sent = time.monotonic()
            continue
        # Entries are consecutive sequence numbers: encode them as one run of events.
        chunk, ended = encode_events(
            [event for _, event in batch],
            batch[0][0],
            reply_id=reply.pk,
            show_detail=show_detail,
        )
        if chunk:
            yield chunk
            last_sent = time.monotonic()
        if ended:
            return


def _final_from_database(message: Message, *, show_detail: bool) -> bytes:
    """The ``done`` or ``error`` event of a reply that has ended, from its saved row."""
    usage = (
        Usage(message.input_tokens or 0, message.output_tokens, message.reasoning_tokens)
        if message.output_tokens is not None
        else None
    )
    if message.status == Message.Status.ERROR:
        event: Any = RunFailed(
            message=message.error,
            kind=message.error_kind,
            detail=message.error_detail,
            status=message.status,
            html=message.content_html,
            finish_reason=message.finish_reason,
            can_continue=message.can_continue,
            reasoning_ms=message.reasoning_ms,
        )
    else:
        event = RunFinished(
            status=message.status,
            finish_reason=message.finish_reason,
            html=message.content_html,
            usage=usage,
            notice=message.notice,
            can_continue=message.can_continue,
            reasoning_ms=message.reasoning_ms,
        )
    return _ending_or_start(event, 0, reply_id=message.pk, show_detail=show_detail)
