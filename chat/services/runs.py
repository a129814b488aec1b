"""The reply run: the one place where a reply is generated.

A run belongs to the server process, not to the request that started it (see
``hub.py``). It drives the provider's stream and appends typed run events to its log,
in order; everything else consumes that log:

- the database (``persistence.py``): partial text in batched checkpoints, the outcome
  once, at the end;
- followers (``chat_stream.py`` encodes them as the chat page's SSE): the request that
  started the run, a reload, another tab; each reads the log from its own position, so
  a follower that falls behind gets what piled up in one go (adaptive coalescing);
- other workers, through Redis (``broker.py``), when ``REDIS_URL`` is set.

Run events, the domain language: ``RunStarted``; then ``TextDelta`` and
``ReasoningDelta`` (the provider's own objects, no copy), ``Usage``; then exactly one of
``RunFinished`` (the provider ended it: complete or incomplete, with its finish reason),
``RunFailed`` (an error, the person's sentence and the operator's detail) or
``RunStopped`` (Stop, a server restart or the server's time limit ended it). An event's
sequence number is its position in the log, from 1. Before the first piece, a
``RunFallback`` says another model answers because the chosen one failed (see
``fallback.py``); the run's ``provider``/``model`` are then that model's.

The run also measures how long the model thought (``reasoning_ms``: from its first
reasoning piece to the first text piece after it, or to the end when no text came); the
terminal events carry it and the reply row stores it, whatever the ending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.translation import gettext as _

from ..dbtext import storable_text
from ..models import Message
from ..outcomes import (
    CONTINUABLE_REASONS,
    error_for_person,
    incomplete_notice,
    unexpected_error_for_person,
)
from ..providers import (
    Finish,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    Usage,
    get_provider,
)
from .fallback import FALLBACK_KINDS, FallbackHop, fallback_note
from .persistence import db_step, outcome_of, save_outcome_patiently

if TYPE_CHECKING:
    from .hub import ReplyHub
    from .replies import PreparedReply

logger = logging.getLogger("chat.services")


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The run began: which reply, for which question, with which model. ``prefix`` is
    the text the reply already had (a Continue appends to it)."""

    reply_id: int
    conversation_id: int
    user_message_id: int
    provider: str
    model: str
    title: str = ""  # the conversation's new title, when this run created it
    trimmed: int = 0  # earlier messages left out to fit the context
    trimmed_note: str = ""
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The provider ended the reply: ``status`` complete (it finished normally) or
    incomplete (text, but cut by the token limit, the connection, a filter...).
    ``html`` is the saved, sanitized rendering of the whole reply. ``reasoning_ms``: how
    long the model thought before its answer began (None: it showed no reasoning)."""

    status: str
    finish_reason: str
    html: str
    usage: Usage | None = None
    notice: str = ""
    can_continue: bool = False
    reasoning_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RunFailed:
    """The reply failed. ``message`` is the sentence for people; ``detail`` is for staff
    and logs only. ``status`` is error, or incomplete when a Continue failed (the reply
    keeps its text and can be continued again). ``html`` renders the partial text."""

    message: str
    kind: str
    detail: str
    status: str
    html: str
    finish_reason: str = ""
    can_continue: bool = False
    reasoning_ms: int | None = None  # as in RunFinished
    # After a fallback: the models tried and why, this one failing too ("" without one).
    fallback_note: str = ""


@dataclass(frozen=True, slots=True)
class RunStopped:
    """Something other than the provider ended the reply, its text so far saved:
    ``reason`` "stop" (a person pressed Stop: status stopped), "interrupted" (the server
    shut down) or "time_limit" (CHAT_MAX_REPLY_SECONDS): status incomplete, or error
    when there was no text yet."""

    reason: str
    status: str
    html: str
    usage: Usage | None = None
    finish_reason: str = ""
    notice: str = ""
    can_continue: bool = False
    message: str = ""  # the person's sentence when the status is error
    reasoning_ms: int | None = None  # as in RunFinished


@dataclass(frozen=True, slots=True)
class RunFallback:
    """The model failed before its first token and another one answers instead:
    ``provider``/``model`` (``label``: its provider's name in the menu); ``note`` is the
    sentence for people (which models failed and why)."""

    provider: str
    model: str
    label: str
    note: str


RunEvent = (
    RunStarted
    | RunFallback
    | TextDelta
    | ReasoningDelta
    | Usage
    | RunFinished
    | RunFailed
    | RunStopped
)
TERMINAL_EVENTS = (RunFinished, RunFailed, RunStopped)


def _ms(seconds: float) -> int:
    """A duration in whole milliseconds (never negative)."""
    return max(0, int(seconds * 1000))


# Why a run was stopped -> the finish reason stored on the reply.
_STOP_REASONS = {
    "interrupted": Message.FinishReason.INTERRUPTED,
    "time_limit": Message.FinishReason.TIME_LIMIT,
}


class ReplyRun:
    """One reply being generated: its event log, its task, and how it ends.

    ``events`` is the log (``events[n - 1]`` has sequence number n); ``ended`` is set
    once the terminal event is in it. Followers call ``wait(cursor)`` to sleep until the
    log grows past ``cursor`` (or the hub's once-a-second tick)."""

    def __init__(self, prepared: PreparedReply, hub: ReplyHub) -> None:
        self.prepared = prepared
        self.reply_id = prepared.reply_id
        self.events: list[Any] = []
        self.ended = False
        self.stop_reason = ""
        self._hub = hub
        self._waiters: list[asyncio.Future[None]] = []
        # A run that is not stored (an API call) has no followers elsewhere either.
        self._publish = hub.publisher() if prepared.store else None
        self._task: asyncio.Task[None] | None = None
        self._running = False  # the task took its first step (a Stop before: no cancel)
        self._closing = False  # the outcome is being saved: too late to stop
        self._text: list[str] = [prepared.prefix] if prepared.prefix else []
        # Continue: the reply's reasoning so far stays (the new run may think again).
        self._reasoning: list[str] = (
            [prepared.prefix_reasoning] if prepared.prefix_reasoning else []
        )
        self._label = prepared.label  # the provider's label once it is known
        # The model answering: the chosen one, or the fallback that took over from it.
        self.provider, self.model = prepared.provider, prepared.model
        # The models that failed before it (fallback), as saved on the reply.
        self.fallback: list[dict[str, str]] = []
        self._usage: Usage | None = None
        self.started_at = time.monotonic()
        self._first_token_at: float | None = None
        # Thinking time: from the first reasoning piece to the first text piece after it
        # (None while the model thinks), or to the end when no text comes.
        self._reasoning_started: float | None = None
        self._reasoning_ms: int | None = None

    # --- the log -----------------------------------------------------------------------

    def _append(self, event: Any) -> None:
        self.events.append(event)
        if self._waiters:
            self._wake()
        if self._publish is not None:
            self._publish(self.reply_id, len(self.events), event)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def tick(self) -> None:
        """Wake every follower (the hub calls this once a second, for heartbeats)."""
        if self._waiters:
            self._wake()

    async def wait(self, cursor: int) -> None:
        """Return once the log holds more than ``cursor`` events, the run has ended,
        or the hub ticked (at most about a second)."""
        if len(self.events) > cursor or self.ended:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()

    def snapshot(self) -> tuple[str, str, int]:
        """(text so far, reasoning so far, sequence number they reach)."""
        return "".join(self._text), "".join(self._reasoning), len(self.events)

    def reasoning_time(self) -> tuple[int | None, bool]:
        """(thinking time in ms, whether the model is still thinking): the time from its
        first reasoning piece to the first text piece after it, or until now while it
        still thinks; (None, False) when it has shown no reasoning."""
        if self._reasoning_started is None:
            return None, False
        if self._reasoning_ms is not None:
            return self._reasoning_ms, False
        return _ms(time.monotonic() - self._reasoning_started), not self.ended

    # --- running -----------------------------------------------------------------------

    def begin(self) -> None:
        """Log ``RunStarted`` and start generating (in a task of the running loop)."""
        p = self.prepared
        self._append(
            RunStarted(
                reply_id=p.reply_id,
                conversation_id=p.conversation_id,
                user_message_id=p.user_message_id,
                provider=p.provider,
                model=p.model,
                title=p.created_conversation_title,
                trimmed=p.trimmed,
                trimmed_note=Message(context_trimmed=p.trimmed).trimmed_note,
                prefix=p.prefix,
            )
        )
        self._task = asyncio.get_running_loop().create_task(self._main())

    def stop(self, reason: str = "stop") -> bool:
        """End the run now, saving its text so far (``reason``: "stop", "interrupted" or
        "time_limit"). False when it is already ending (or was stopped already).

        A Stop that comes before the task's first step does not cancel it (a task
        cancelled before it starts never enters its body, so nothing would be saved):
        the task sees ``stop_reason`` when it starts and ends as stopped at once."""
        if self._closing or self.ended or self._task is None or self.stop_reason:
            return False
        self.stop_reason = reason
        if self._running:
            self._task.cancel()
        return True

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task generating the reply (None before ``begin``)."""
        return self._task

    async def done(self) -> None:
        """Wait for the run's task to finish (its outcome saved)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def _main(self) -> None:
        self._running = True
        prepared = self.prepared
        stream: Any = None
        limit = asyncio.timeout(settings.CHAT_MAX_REPLY_SECONDS or None)
        try:
            if self.stop_reason:  # stopped before this task took its first step
                raise asyncio.CancelledError
            provider = get_provider(prepared.provider)
            self._label = prepared.label or provider.label
            hops = prepared.fallbacks
            async with limit:
                for index in range(len(hops) + 1):
                    hop = hops[index - 1] if index else None
                    if hop is not None:
                        provider = get_provider(hop.provider)
                    history = (hop.history if hop else None) or prepared.history
                    stream = provider.stream(history, self.model, prepared.options)
                    try:
                        finish = await self._consume(stream)
                    except ProviderError as error:
                        # Before the first token only: another model answers.
                        if (
                            index < len(hops)
                            and self._first_token_at is None
                            and error.kind in FALLBACK_KINDS
                        ):
                            with contextlib.suppress(BaseException):
                                await asyncio.wait_for(stream.aclose(), 5)
                            stream = None
                            self._fall_back(hops[index], error)
                            continue
                        raise
                    break
            self._closing = True
            await self._finish(finish)
        except asyncio.CancelledError:
            if not self.stop_reason:
                raise  # the loop itself is going away
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()
            self._closing = True
            await self._stopped(self.stop_reason)
        except TimeoutError:
            if not limit.expired():
                raise
            self._closing = True
            await self._stopped("time_limit")
        except ProviderError as error:
            self._closing = True
            self._log_failure(str(error.kind), error.user_message)
            message = error_for_person(error, label=self._label, model=self.model)
            await self._fail(message, str(error.kind), error.user_message)
        except Exception as exc:
            # A bug of ours or an event we cannot handle: end the reply as an error with
            # its text, never leave it "streaming".
            self._closing = True
            detail = f"{type(exc).__name__}: {exc}"
            self._log_failure("unexpected", detail, exc)
            await self._fail(unexpected_error_for_person(label=self._label), "unexpected", detail)
        finally:
            # Closing the provider's generator closes the upstream HTTP response.
            if stream is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(stream.aclose(), 5)
            self.ended = True
            self._wake()
            self._hub.forget(self)

    async def _consume(self, stream: Any) -> Finish | None:
        """Log the provider stream's pieces as run events (text cleaned, checkpoints
        queued, thinking timed) until it ends; its ``Finish`` (None: it sent none).
        Raises what the provider raises."""
        prepared = self.prepared
        finish: Finish | None = None
        checkpoint_every = settings.CHAT_CHECKPOINT_SECONDS
        last_checkpoint = self.started_at
        text, reasoning = self._text, self._reasoning
        thinking = False  # reasoning came and no text after it yet
        async for item in stream:
            kind = type(item)
            if kind is TextDelta:
                piece = item.text
                if type(piece) is not str:
                    raise TypeError(f"text delta is {type(piece).__name__}, not str")
                now = time.monotonic()
                if self._first_token_at is None:
                    self._first_token_at = now
                if thinking:
                    thinking = False
                    self._reasoning_ms = _ms(now - self._reasoning_started)  # type: ignore[operator]
                clean = storable_text(piece)
                text.append(clean)
                self._append(item if clean is piece else TextDelta(clean))
                if now - last_checkpoint >= checkpoint_every and prepared.store:
                    last_checkpoint = now
                    self._hub.checkpoints.save_later(self.reply_id, "".join(text))
            elif kind is ReasoningDelta:
                piece = item.text
                if type(piece) is not str:
                    raise TypeError(f"reasoning delta is {type(piece).__name__}, not str")
                if self._reasoning_started is None:
                    self._reasoning_started = time.monotonic()
                    thinking = True
                    if self._first_token_at is None:
                        self._first_token_at = self._reasoning_started
                clean = storable_text(piece)
                reasoning.append(clean)
                self._append(item if clean is piece else ReasoningDelta(clean))
            elif kind is Usage:
                if prepared.prefix_output_tokens:  # Continue: the whole reply's
                    item = Usage(
                        item.input_tokens,
                        item.output_tokens + prepared.prefix_output_tokens,
                        item.reasoning_tokens,
                    )
                self._usage = item
                self._append(item)
            elif kind is Finish:
                finish = item
        return finish

    def _fall_back(self, hop: FallbackHop, error: ProviderError) -> None:
        """The model failed before its first token with ``error``: ``hop`` answers
        instead. Recorded on the run (``fallback``, saved on the reply) and logged as
        ``RunFallback`` for followers."""
        self._log_failure(f"{error.kind}, falling back to {hop.provider}/{hop.model}", str(error))
        self.fallback.append({"provider": self.provider, "model": self.model, "kind": error.kind})
        self._usage = None
        self.provider, self.model, self._label = hop.provider, hop.model, hop.label
        self._append(
            RunFallback(
                provider=hop.provider,
                model=hop.model,
                label=hop.label,
                note=fallback_note(self.fallback, model=hop.model),
            )
        )

    # --- endings -----------------------------------------------------------------------

    @property
    def time_to_first_token_ms(self) -> int | None:
        """Milliseconds from the start to the first text or reasoning piece (None: none)."""
        ttft = self._first_token_at
        return None if ttft is None else _ms(ttft - self.started_at)

    @property
    def usage(self) -> Usage | None:
        """The token usage the provider reported (None until it does)."""
        return self._usage

    async def _save(self, status: str, **outcome: str) -> str:
        self._hub.checkpoints.forget(self.reply_id)
        ttft = self._first_token_at
        if self._reasoning_started is not None and self._reasoning_ms is None:
            # No text came after the reasoning: the model thought until the end.
            self._reasoning_ms = _ms(time.monotonic() - self._reasoning_started)
        # The usage record (metering: cost, budgets) is written before the run's last event,
        # so a budget check right after a reply sees it.
        await self._meter(status, outcome.get("finish_reason", ""))
        if not self.prepared.store:
            return ""  # an API call: the caller has the text, nothing is kept
        return await save_outcome_patiently(
            self.reply_id,
            text="".join(self._text),
            reasoning="".join(self._reasoning),
            status=status,
            usage=self._usage,
            ttft_ms=None if ttft is None else _ms(ttft - self.started_at),
            duration_ms=_ms(time.monotonic() - self.started_at),
            reasoning_ms=(
                self._reasoning_ms
                if self._reasoning_ms is not None or not self.prepared.prefix
                else self.prepared.prefix_reasoning_ms
            ),
            **(
                {"answered_by": (self.provider, self.model), "fallback": self.fallback}
                if self.fallback
                else {}
            ),
            **outcome,
        )

    async def _meter(self, status: str, finish_reason: str) -> None:
        """Write the reply's usage record (who, which model, tokens, cost, times,
        outcome; the ``usage`` app) in one short database step. A failure to meter is
        logged, never shown to the person, and never loses the reply."""
        from usage.budgets import budget_release, budget_settle
        from usage.services import outcome_from_reply

        prepared, usage = self.prepared, self._usage
        if usage is None:
            usage = self._estimated_usage()
        try:
            await db_step(budget_settle)(
                reservation_id=prepared.budget_reservation_id,
                user_id=prepared.user_id,
                provider=self.provider,
                model=self.model,
                input_tokens=usage.input_tokens if usage else None,
                output_tokens=usage.output_tokens if usage else None,
                reasoning_tokens=usage.reasoning_tokens if usage else None,
                ttft_ms=self.time_to_first_token_ms,
                duration_ms=_ms(time.monotonic() - self.started_at),
                outcome=outcome_from_reply(status, finish_reason),
                source=prepared.source or ("chat" if prepared.store else "api"),
                api_key_id=prepared.api_key_id,
                reply_id=self.reply_id if prepared.store else None,
            )
        except Exception:
            logger.exception("usage record for reply %s not written", self.reply_id)
            try:
                await db_step(budget_release)(reservation_id=prepared.budget_reservation_id)
            except Exception:
                logger.exception("budget hold of reply %s not released", self.reply_id)

    def _estimated_usage(self) -> Usage | None:
        """Tokens for a reply the provider reported no usage for (it was stopped, cut
        off or failed mid-stream, which providers still bill): the history sent and the
        text and reasoning received, estimated as the budget estimates them
        (``replies.estimate_tokens``). None when nothing was received: the request may
        not have been processed."""
        from .replies import estimate_tokens, history_tokens

        prefix = self.prepared.prefix
        text = "".join(self._text)[len(prefix) :]
        prefix_reasoning = self.prepared.prefix_reasoning
        reasoning = "".join(self._reasoning)[len(prefix_reasoning) :]
        if not text and not reasoning:
            return None
        output = estimate_tokens(text) if text else 0
        thought = estimate_tokens(reasoning) if reasoning else 0
        return Usage(
            history_tokens(self.prepared.history),
            output + thought + self.prepared.prefix_output_tokens,
            thought or None,
        )

    async def _finish(self, finish: Finish | None) -> None:
        outcome = outcome_of(
            text="".join(self._text),
            reasoned=bool(self._reasoning) or bool(self._usage and self._usage.reasoning_tokens),
            finish=finish,
            label=self._label,
        )
        status = outcome.pop("status")
        if status == Message.Status.ERROR:
            self._log_failure(f"empty:{outcome['finish_reason']}", outcome.get("error_detail", ""))
            await self._fail(
                outcome["error"],
                outcome["error_kind"],
                outcome.get("error_detail", ""),
                outcome["finish_reason"],
            )
            return
        html = await self._save(status, **outcome)
        reason = outcome["finish_reason"]
        incomplete = status == Message.Status.INCOMPLETE
        self._append(
            RunFinished(
                status=status,
                finish_reason=reason,
                html=html,
                usage=self._usage,
                notice=incomplete_notice(reason) if incomplete else "",
                can_continue=incomplete and reason in CONTINUABLE_REASONS,
                reasoning_ms=self._reasoning_ms,
            )
        )
        self._hub.after_run(self, status)

    async def _fail(self, message: str, kind: str, detail: str, finish_reason: str = "") -> None:
        # A Continue that failed keeps the reply it was continuing: still cut off, and
        # still continuable, with the error said (Retry would start it over).
        status = Message.Status.ERROR
        if self.prepared.prefix and "".join(self._text).strip():
            status, finish_reason = Message.Status.INCOMPLETE, Message.FinishReason.CUT_OFF
        html = await self._save(
            status, error=message, error_kind=kind, error_detail=detail, finish_reason=finish_reason
        )
        self._append(
            RunFailed(
                message=message,
                kind=kind,
                detail=detail,
                status=status,
                html=html,
                finish_reason=finish_reason,
                can_continue=status == Message.Status.INCOMPLETE,
                reasoning_ms=self._reasoning_ms,
                fallback_note=fallback_note(
                    self.fallback, model=self.model, failed=status == Message.Status.ERROR
                ),
            )
        )

    async def _stopped(self, reason: str) -> None:
        if reason == "stop":
            html = await self._save(Message.Status.STOPPED)
            self._append(
                RunStopped(
                    reason,
                    Message.Status.STOPPED,
                    html,
                    self._usage,
                    reasoning_ms=self._reasoning_ms,
                )
            )
            return
        finish_reason = _STOP_REASONS[reason]
        if "".join(self._text).strip():
            html = await self._save(Message.Status.INCOMPLETE, finish_reason=finish_reason)
            notice = incomplete_notice(finish_reason)
            self._append(
                RunStopped(
                    reason,
                    Message.Status.INCOMPLETE,
                    html,
                    self._usage,
                    finish_reason,
                    notice,
                    can_continue=finish_reason in CONTINUABLE_REASONS,
                    reasoning_ms=self._reasoning_ms,
                )
            )
            return
        message = (
            _("The reply was interrupted: the server restarted before the model answered.")
            if reason == "interrupted"
            else _("The model took longer than the server allows for a reply.")
        )
        html = await self._save(
            Message.Status.ERROR, error=message, error_kind=reason, finish_reason=finish_reason
        )
        self._append(
            RunStopped(
                reason,
                Message.Status.ERROR,
                html,
                self._usage,
                finish_reason,
                message=message,
                reasoning_ms=self._reasoning_ms,
            )
        )

    def _log_failure(self, kind: str, detail: str, exc: BaseException | None = None) -> None:
        prepared = self.prepared
        logger.log(
            logging.ERROR if exc is not None else logging.WARNING,
            "reply %s failed: provider=%s model=%s kind=%s conversation=%s: %s",
            prepared.reply_id,
            self.provider,
            self.model,
            kind,
            prepared.conversation_id,
            detail,
            exc_info=exc,
        )
