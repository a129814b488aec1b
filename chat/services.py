"""Business logic: keyword-only functions named <noun>_<verb>.

The flow of one reply (see DESIGN.md): ``reply_prepare`` saves the user message and an
empty assistant message (status streaming) and builds the history, all in one short
transaction; ``reply_stream`` then talks to the provider with no database connection
held, relays text as Server-Sent Events with heartbeats, and saves the outcome in
short steps: complete, error (recorded on the message, never as a reply) or stopped
(Stop button or disconnect: the partial text is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .markdown import render_markdown
from .models import Conversation, Message
from .providers import (
    PROVIDER_REGISTRY,
    BaseProvider,
    ChatOptions,
    Finish,
    ProviderError,
    TextDelta,
    Usage,
    get_provider,
    list_providers,
)

logger = logging.getLogger(__name__)

TITLE_MAX_CHARS = 60
P = ParamSpec("P")
R = TypeVar("R")

# --- Conversations ----------------------------------------------------------------------


def conversation_create(
    *,
    owner: AbstractBaseUser,
    provider: str = "",
    model: str = "",
    title: str = "",
) -> Conversation:
    """A new, empty conversation with the given (or default) provider and model."""
    provider = provider or settings.CHAT_DEFAULT_PROVIDER
    if provider not in PROVIDER_REGISTRY:
        raise ValidationError(_("Unknown provider."))
    provider_obj = get_provider(provider)
    if model:
        _check_model(provider_obj, model)
    else:
        model = provider_obj.default_model()
    return Conversation.objects.create(
        owner=owner, provider=provider, model=model, title=title.strip()[:200]
    )


def _check_model(provider: BaseProvider, model: str) -> None:
    """Reject a model the provider is known not to have (when its list is known)."""
    known = provider.known_models()
    if known is not None and model not in known:
        raise ValidationError(
            _("Unknown model “%(model)s” for %(label)s.")
            % {"model": model, "label": provider.label}
        )


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    title = " ".join(title.split())
    if not title:
        raise ValidationError(_("The title cannot be empty."))
    conversation.title = title[:200]
    conversation.save(update_fields=["title"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


def conversation_update_settings(
    *,
    conversation: Conversation,
    system_prompt: str,
    temperature: float | None,
    max_tokens: int | None,
) -> Conversation:
    try:
        ChatOptions(system_prompt=system_prompt, temperature=temperature, max_tokens=max_tokens)
    except ProviderError as e:
        raise ValidationError(e.message) from e
    conversation.system_prompt = system_prompt
    conversation.temperature = temperature
    conversation.max_tokens = max_tokens
    conversation.save(update_fields=["system_prompt", "temperature", "max_tokens"])
    return conversation


def title_from_text(text: str) -> str:
    """A short title from the first message: its first line, cut at a word boundary.
    Costs nothing (no model call)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = line.lstrip("#>*-` ").strip() or line
    if len(line) <= TITLE_MAX_CHARS:
        return line
    cut = line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0]
    return (cut if len(cut) > TITLE_MAX_CHARS // 2 else line[:TITLE_MAX_CHARS]).rstrip() + "…"


# --- Providers for the menu -------------------------------------------------------------


@dataclass(frozen=True)
class ProviderChoice:
    name: str
    label: str
    usable: bool
    models: list[str]
    hint: str = ""


async def provider_menu() -> list[ProviderChoice]:
    """Every provider with its models (usable ones) or the reason and how to enable it."""
    statuses = await sync_to_async(list_providers, thread_sensitive=False)()

    async def choice(status: Any) -> ProviderChoice:
        if not status.usable:
            hint = f"{status.reason}: {status.hint}" if status.hint else status.reason
            return ProviderChoice(status.name, status.label, False, [], hint)
        try:
            models = await get_provider(status.name).list_models()
        except Exception:
            logger.warning("model list for %s failed", status.name, exc_info=True)
            models = list(get_provider(status.name).default_models)
        return ProviderChoice(status.name, status.label, True, models)

    return list(await asyncio.gather(*(choice(s) for s in statuses)))


# --- One reply --------------------------------------------------------------------------


class ReplyAction:
    SEND = "send"
    REGENERATE = "regenerate"
    EDIT = "edit"
    ALL = (SEND, REGENERATE, EDIT)


@dataclass
class PreparedReply:
    conversation_id: int
    user_message_id: int
    reply_id: int
    provider: str
    model: str
    options: ChatOptions
    history: list[dict[str, str]]
    trimmed: int = 0  # how many old messages did not fit the context
    created_conversation_title: str = ""


def _context_history(conversation: Conversation, before: Message) -> list[dict[str, str]]:
    """What the model sees: user turns and the replies people saw (complete or stopped),
    never errors, never replies still streaming (another tab's)."""
    rows = (
        conversation.messages.filter(created_at__lte=before.created_at, id__lte=before.id)
        .exclude(status__in=[Message.Status.ERROR, Message.Status.STREAMING])
        .order_by("created_at", "id")
        .values_list("role", "content")
    )
    return [{"role": role, "content": content} for role, content in rows if content.strip()]


def estimate_tokens(text: str) -> int:
    """A cautious token estimate without a tokenizer: about 3 UTF-8 bytes a token
    (real tokenizers average nearer 4 for English), plus a little per message."""
    return len(text.encode("utf-8")) // 3 + 4


def history_fit(
    history: list[dict[str, str]],
    *,
    context_tokens: int,
    reserve_tokens: int,
    system_prompt: str = "",
) -> tuple[list[dict[str, str]], int]:
    """The context policy: the system prompt is always kept, then the newest turns that
    fit in what remains after reserving room for the reply; older turns are left out.
    The kept history starts with a user turn. Returns (kept, number left out); raises
    ValidationError when even the newest message alone does not fit."""
    budget = (
        context_tokens - reserve_tokens - (estimate_tokens(system_prompt) if system_prompt else 0)
    )
    kept: list[dict[str, str]] = []
    used = 0
    for message in reversed(history):
        cost = estimate_tokens(message["content"])
        if used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    if not kept and history:
        raise ValidationError(
            _(
                "The message is too long for this model: about %(needed)d tokens, and the "
                "model takes %(available)d. Shorten it or pick a model with a larger context."
            )
            % {"needed": estimate_tokens(history[-1]["content"]), "available": max(budget, 0)}
        )
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept, len(history) - len(kept)


def reply_prepare(
    *,
    conversation: Conversation,
    action: str,
    content: str = "",
    provider: str = "",
    model: str = "",
) -> PreparedReply:
    """Save what must be saved before asking the model, in one short transaction.

    send: a new user message. edit: replace the last user message's text (later
    messages are removed). regenerate: remove the replies after the last user message.
    The provider and model (if given) become the conversation's current choice.
    """
    if action not in ReplyAction.ALL:
        raise ValidationError(_("Unknown action."))
    provider = provider or conversation.provider
    model = model or conversation.model
    if provider not in PROVIDER_REGISTRY:
        raise ValidationError(_("Unknown provider “%(name)s”.") % {"name": provider})
    provider_obj = get_provider(provider)
    status = provider_obj.status()
    if not status.usable:
        raise ValidationError(
            _("%(label)s is not available: %(reason)s.")
            % {"label": status.label, "reason": status.reason}
        )
    if not model:
        raise ValidationError(_("Choose a model."))
    _check_model(provider_obj, model)
    options = ChatOptions(
        system_prompt=conversation.system_prompt,
        temperature=conversation.temperature,
        max_tokens=conversation.max_tokens,
    )
    if action in (ReplyAction.SEND, ReplyAction.EDIT):
        content = content.strip()
        if not content:
            raise ValidationError(_("The message is empty."))
        if len(content) > settings.CHAT_MAX_MESSAGE_CHARS:
            raise ValidationError(
                _("The message is too long (%(length)d characters; the limit is %(limit)d).")
                % {"length": len(content), "limit": settings.CHAT_MAX_MESSAGE_CHARS}
            )

    with transaction.atomic():
        conv = Conversation.objects.select_for_update().get(pk=conversation.pk)
        reply_expire_stale(conversation_id=conv.pk)
        now = timezone.now()
        if action == ReplyAction.SEND:
            user_message = Message.objects.create(
                conversation=conv, role=Message.Role.USER, content=content, created_at=now
            )
        else:
            user_message = (
                conv.messages.filter(role=Message.Role.USER).order_by("-created_at", "-id").first()
            )
            if user_message is None:
                raise ValidationError(_("There is no message to answer yet."))
            if conv.messages.filter(
                status=Message.Status.STREAMING, id__gt=user_message.id
            ).exists():
                raise ValidationError(_("Wait for the current reply to finish, or stop it."))
            conv.messages.filter(
                created_at__gte=user_message.created_at, id__gt=user_message.id
            ).delete()
            if action == ReplyAction.EDIT:
                user_message.content = content
                user_message.save(update_fields=["content"])
        reply = Message.objects.create(
            conversation=conv,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            provider=provider,
            model=model,
            created_at=max(now, user_message.created_at),
        )
        conv.provider, conv.model, conv.updated_at = provider, model, now
        fields = ["provider", "model", "updated_at"]
        new_title = ""
        if not conv.title:
            conv.title = new_title = title_from_text(user_message.content)
            fields.append("title")
        conv.save(update_fields=fields)
        context = provider_obj.context_window(model)
        history, trimmed = history_fit(
            _context_history(conv, user_message),
            context_tokens=context,
            reserve_tokens=options.max_tokens or min(1024, context // 4),
            system_prompt=options.system_prompt,
        )

    return PreparedReply(
        conversation_id=conv.pk,
        user_message_id=user_message.pk,
        reply_id=reply.pk,
        provider=provider,
        model=model,
        options=options,
        history=history,
        trimmed=trimmed,
        created_conversation_title=new_title,
    )


def db_step(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run one short piece of database work in a worker thread and give the connection
    back at once (to psycopg's pool, or closed for SQLite), so no connection is held
    while a stream waits on its upstream."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)


def sse_event(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


HEARTBEAT = b": keep-alive\n\n"
_END = object()
_STOP = object()


@dataclass
class _Failed:
    error: BaseException


# How long Stop waits for the worker writing a reply to save it before closing it itself.
STOP_GRACE_SECONDS = 2.5

# Streams running in this process, by reply id: Stop puts a sentinel in the queue.
_ACTIVE_STREAMS: dict[int, asyncio.Queue[Any]] = {}


def _stop_key(reply_id: int) -> str:
    return f"chat:stop:{reply_id}"


async def reply_stop(*, reply: Message) -> bool:
    """Ask the stream writing ``reply`` to stop (in this worker at once, in another one
    within a second through the shared cache). True if the reply was still streaming.
    A stale reply (its process is gone) is closed here and now."""
    if reply.status != Message.Status.STREAMING:
        return False
    if await sync_to_async(reply_expire_stale)(conversation_id=reply.conversation_id):
        return True
    queue = _ACTIVE_STREAMS.get(reply.pk)
    if queue is not None:  # streaming in this process: it saves itself at once
        queue.put_nowait(_STOP)
        return True
    await cache.aset(_stop_key(reply.pk), True, 300)
    # Another worker notices within a second and saves the partial reply. If none does,
    # the stream's process is gone (a restart cut it off): close the reply here, keeping
    # the text of its last checkpoint.
    still_streaming = Message.objects.filter(pk=reply.pk, status=Message.Status.STREAMING)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        if not await still_streaming.aexists():
            return True
    await still_streaming.aupdate(status=Message.Status.STOPPED)
    return True


def _save_outcome(
    reply_id: int,
    *,
    text: str,
    status: str,
    error: str = "",
    usage: Usage | None = None,
    ttft_ms: int | None = None,
    duration_ms: int | None = None,
) -> str:
    html = render_markdown(text) if text else ""
    fields: dict[str, Any] = {
        "content": text,
        "content_html": html,
        "status": status,
        "error": error,
        "time_to_first_token_ms": ttft_ms,
        "duration_ms": duration_ms,
    }
    if usage is not None:
        fields["input_tokens"] = usage.input_tokens
        fields["output_tokens"] = usage.output_tokens
    Message.objects.filter(pk=reply_id).update(**fields)
    return html


SAVE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


async def _save_outcome_patiently(reply_id: int, **outcome: Any) -> str:
    """The final save, retried while the database is briefly locked or restarting: the
    reply's text exists only in memory until this succeeds."""
    for delay in (*SAVE_RETRY_DELAYS, None):
        try:
            return await db_step(_save_outcome)(reply_id, **outcome)
        except OperationalError:
            if delay is None:
                logger.exception("reply %s: could not save its outcome", reply_id)
                raise
            logger.warning("reply %s: database busy, saving again in %.1fs", reply_id, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def reply_expire_stale(*, conversation_id: int) -> int:
    """Replies left "streaming" by a process that died (or lost its database at the
    very end) are closed as errors after CHAT_STALE_STREAM_SECONDS, so the conversation
    never stays blocked. Returns how many were closed."""
    cutoff = timezone.now() - timedelta(seconds=settings.CHAT_STALE_STREAM_SECONDS)
    return Message.objects.filter(
        conversation_id=conversation_id, status=Message.Status.STREAMING, created_at__lt=cutoff
    ).update(
        status=Message.Status.ERROR,
        error=_("The reply was interrupted: the server stopped before it finished."),
    )


def _save_checkpoints(texts: dict[int, str]) -> None:
    """Save partial replies still streaming (a finished reply is never overwritten)."""
    replies = [Message(pk=reply_id, content=text) for reply_id, text in texts.items()]
    Message.objects.filter(status=Message.Status.STREAMING).bulk_update(
        replies, ["content"], batch_size=500
    )


# Work done once a second (stop requests) or on demand (partial replies) for all the
# streams of this process together: with a thousand streams, one cache read and one
# database write at a time instead of a thousand, and no stream waits on either.
_PENDING_CHECKPOINTS: dict[int, str] = {}
_checkpoint_writer: asyncio.Task[None] | None = None
_stop_watcher: asyncio.Task[None] | None = None


def _running(task: asyncio.Task[None] | None) -> bool:
    return task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()


async def _write_checkpoints() -> None:
    while _PENDING_CHECKPOINTS:
        batch = dict(_PENDING_CHECKPOINTS)
        _PENDING_CHECKPOINTS.clear()
        try:
            await db_step(_save_checkpoints)(batch)
        except Exception:
            logger.warning("saving %d partial replies failed", len(batch), exc_info=True)


def _checkpoint_later(reply_id: int, text: str) -> None:
    global _checkpoint_writer
    _PENDING_CHECKPOINTS[reply_id] = text
    if not _running(_checkpoint_writer):
        _checkpoint_writer = asyncio.create_task(_write_checkpoints())


async def _watch_stops() -> None:
    """A Stop asked in another worker arrives through the shared cache."""
    get_many = sync_to_async(cache.get_many, thread_sensitive=False)
    while _ACTIVE_STREAMS:
        await asyncio.sleep(1.0)
        reply_ids = list(_ACTIVE_STREAMS)
        try:
            asked = await get_many([_stop_key(reply_id) for reply_id in reply_ids])
        except Exception:
            logger.warning("reading stop requests failed", exc_info=True)
            continue
        for reply_id in reply_ids:
            queue = _ACTIVE_STREAMS.get(reply_id)
            if queue is not None and asked.get(_stop_key(reply_id)):
                queue.put_nowait(_STOP)


async def reply_stream(*, prepared: PreparedReply) -> AsyncIterator[bytes]:
    """Relay the provider's reply as SSE bytes and save the outcome. No database
    connection is held while waiting on the upstream."""
    started = time.monotonic()
    parts: list[str] = []
    usage: Usage | None = None
    finish: Finish | None = None
    first_token_at: float | None = None
    heartbeat = settings.CHAT_HEARTBEAT_SECONDS
    checkpoint_every = settings.CHAT_CHECKPOINT_SECONDS
    last_checkpoint = started
    queue: asyncio.Queue[Any] = asyncio.Queue()
    _ACTIVE_STREAMS[prepared.reply_id] = queue
    provider = get_provider(prepared.provider)
    events = provider.stream(prepared.history, prepared.model, prepared.options)

    async def pump() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the relay loop, which reports it
            queue.put_nowait(_Failed(exc))
            return
        queue.put_nowait(_END)

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    def ttft_ms() -> int | None:
        return None if first_token_at is None else int((first_token_at - started) * 1000)

    async def save(status: str, error: str = "") -> str:
        return await asyncio.shield(
            _save_outcome_patiently(
                prepared.reply_id,
                text="".join(parts),
                status=status,
                error=error,
                usage=usage,
                ttft_ms=ttft_ms(),
                duration_ms=elapsed_ms(),
            )
        )

    def done_event(status: str, html: str) -> bytes:
        return sse_event(
            "done",
            {
                "message_id": prepared.reply_id,
                "status": status,
                "html": html,
                "provider": prepared.provider,
                "model": prepared.model,
                "input_tokens": usage.input_tokens if usage else None,
                "output_tokens": usage.output_tokens if usage else None,
                "finish_reason": finish.reason if finish else None,
            },
        )

    pump_task = asyncio.create_task(pump())
    global _stop_watcher
    if not _running(_stop_watcher):
        _stop_watcher = asyncio.create_task(_watch_stops())
    try:
        yield sse_event(
            "start",
            {
                "message_id": prepared.reply_id,
                "user_message_id": prepared.user_message_id,
                "provider": prepared.provider,
                "model": prepared.model,
                "title": prepared.created_conversation_title,
                "trimmed": prepared.trimmed,
            },
        )
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    item = await queue.get()
            except TimeoutError:
                yield HEARTBEAT
                continue
            if isinstance(item, TextDelta):
                if first_token_at is None:
                    first_token_at = time.monotonic()
                parts.append(item.text)
                yield sse_event("delta", {"text": item.text})
                now = time.monotonic()
                if now - last_checkpoint >= checkpoint_every:
                    last_checkpoint = now
                    _checkpoint_later(prepared.reply_id, "".join(parts))
            elif isinstance(item, Usage):
                usage = item
            elif isinstance(item, Finish):
                finish = item
            elif item is _END:
                if not "".join(parts).strip():
                    message = _("%(label)s: the model returned an empty reply") % {
                        "label": provider.label
                    }
                    await save(Message.Status.ERROR, message)
                    yield sse_event("error", {"message": message, "message_id": prepared.reply_id})
                    return
                html = await save(Message.Status.COMPLETE)
                yield done_event(Message.Status.COMPLETE, html)
                return
            elif item is _STOP:
                pump_task.cancel()
                html = await save(Message.Status.STOPPED)
                yield done_event(Message.Status.STOPPED, html)
                return
            elif isinstance(item, _Failed):
                error = item.error
                if isinstance(error, ProviderError):
                    message = error.user_message
                else:
                    logger.error("reply %s failed", prepared.reply_id, exc_info=error)
                    message = _("%(label)s: unexpected error, see the server log") % {
                        "label": provider.label
                    }
                await save(Message.Status.ERROR, message)
                yield sse_event(
                    "error",
                    {
                        "message": message,
                        "message_id": prepared.reply_id,
                        "partial_html": render_markdown("".join(parts)),
                    },
                )
                return
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away (closed tab, reload, Stop by aborting the request).
        pump_task.cancel()
        await save(Message.Status.STOPPED)
        raise
    finally:
        _ACTIVE_STREAMS.pop(prepared.reply_id, None)
        pump_task.cancel()
        # The pump ends with its own cancellation; closing the provider's generator
        # closes the upstream HTTP response.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(pump_task), 5)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await events.aclose()
