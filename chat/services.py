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
from dataclasses import dataclass, field
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

from .dbtext import storable_text
from .markdown import render_markdown
from .models import Conversation, Message
from .outcomes import (
    CONTINUABLE_REASONS,
    empty_reply_message,
    error_for_person,
    incomplete_notice,
    unexpected_error_for_person,
)
from .providers import (
    PROVIDER_REGISTRY,
    BaseProvider,
    ChatOptions,
    Finish,
    FinishReason,
    LocalProvider,
    ProviderError,
    ReasoningDelta,
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
    provider = provider or settings.CHAT_DEFAULT_PROVIDER or "local"
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
    title = " ".join(storable_text(title).split())
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
    system_prompt = storable_text(system_prompt)
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
    # model -> reason it takes no temperature (absent: it takes one)
    no_temperature: dict[str, str] = field(default_factory=dict)

    @property
    def model_entries(self) -> list[tuple[str, str]]:
        """(model, why it takes no temperature or "") for the menu."""
        return [(model, self.no_temperature.get(model, "")) for model in self.models]


async def provider_menu(*, for_staff: bool = True) -> list[ProviderChoice]:
    """Every usable provider with its models. For staff, also each unusable one with
    the reason and how to enable it (setting names, packages); people who are not staff
    never see those, nor providers they cannot use."""
    statuses = await sync_to_async(list_providers, thread_sensitive=False)()
    if not for_staff:
        statuses = [status for status in statuses if status.usable]

    async def choice(status: Any) -> ProviderChoice:
        if not status.usable:
            hint = f"{status.reason}: {status.hint}" if status.hint else status.reason
            return ProviderChoice(status.name, status.label, False, [], hint)
        provider = get_provider(status.name)
        try:
            models = await provider.list_models()
        except Exception:
            logger.warning("model list for %s failed", status.name, exc_info=True)
            models = list(provider.default_models)
        no_temperature = {}
        for model in models:
            reason = provider.unsupported_options(model).get("temperature")
            if reason:
                no_temperature[model] = reason
        return ProviderChoice(status.name, status.label, True, models, "", no_temperature)

    return list(await asyncio.gather(*(choice(s) for s in statuses)))


def model_default_for(*, user: AbstractBaseUser, menu: list[ProviderChoice]) -> tuple[str, str]:
    """(provider, model) a new chat starts on for ``user``: the model this person used
    last (their most recently updated conversation), else the admin's default (Site
    configuration in the admin, then CHAT_DEFAULT_PROVIDER / CHAT_DEFAULT_MODEL), else
    the first usable model of a cloud provider; the local model only when nothing else
    is usable. ("", "") when no provider is usable. One query at most."""
    from siteconfig.models import SiteConfiguration

    usable = {choice.name: choice.models for choice in menu if choice.usable and choice.models}
    last = (
        Conversation.objects.filter(owner=user)
        .exclude(model="")
        .order_by("-updated_at", "-id")
        .values_list("provider", "model")
        .first()
    )
    if last and last[1] in usable.get(last[0], ()):
        return last[0], last[1]
    config = SiteConfiguration.current()
    for provider, model in (
        (config.default_provider, config.default_model),
        (settings.CHAT_DEFAULT_PROVIDER, settings.CHAT_DEFAULT_MODEL),
    ):
        if provider in usable:
            models = usable[provider]
            return provider, model if model in models else models[0]
    # The registry's classes say which is local: no provider is built for the question.
    ordered = sorted(
        usable,
        key=lambda name: issubclass(PROVIDER_REGISTRY.get(name, BaseProvider), LocalProvider),
    )
    return (ordered[0], usable[ordered[0]][0]) if ordered else ("", "")


# --- One reply --------------------------------------------------------------------------


class ReplyAction:
    SEND = "send"
    REGENERATE = "regenerate"
    EDIT = "edit"
    RETRY = "retry"  # answer again the question of a failed reply, in its place
    CONTINUE = "continue"  # go on with a reply cut by the token limit, in the same reply
    ALL = (SEND, REGENERATE, EDIT, RETRY, CONTINUE)


# Sent as the person's turn when asking a model to go on with a reply cut short.
CONTINUE_PROMPT = (
    "Continue exactly where your previous message stopped, without repeating anything "
    "and without any introduction."
)


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
    created_conversation: bool = False  # the conversation was created by this send
    prefix: str = ""  # text the reply already has (Continue appends to it)
    prefix_output_tokens: int = 0  # tokens the model spent on that text
    label: str = ""  # the provider's label, for messages
    show_detail: bool = False  # the person is staff: errors carry the operator's detail


# Replies that go back to a model as context: what the person saw as an answer. A reply
# cut by the token limit or the connection goes back too (Continue builds on it, and the
# person may say "go on"); a filtered or refused one does not, nor an error.
_CONTEXT_REPLY_STATUSES = (Message.Status.COMPLETE, Message.Status.STOPPED)
_CONTEXT_INCOMPLETE_REASONS = (Message.FinishReason.LENGTH, Message.FinishReason.CUT_OFF)


def _context_history(conversation: Conversation, before: Message) -> list[dict[str, str]]:
    """What the model sees, up to and including ``before`` (a user message).

    Replies people saw as answers (see ``_CONTEXT_REPLY_STATUSES``) with their question;
    never errors, filtered or refused replies, replies still streaming (another tab's),
    nor the reasoning. A question whose reply failed is left out too once the person has
    moved on (or asked again): it would reach the model twice, or as two user turns in a
    row, which some APIs refuse. The result alternates user/assistant and ends with
    ``before``."""
    rows = (
        conversation.messages.filter(created_at__lte=before.created_at, id__lte=before.id)
        .order_by("created_at", "id")
        .values_list("id", "role", "content", "status", "finish_reason")
    )
    history: list[dict[str, str]] = []
    pending_question: dict[str, str] | None = None
    for message_id, role, content, status, finish_reason in rows:
        if role == Message.Role.USER:
            # A question not followed by a usable answer is replaced by the next one.
            pending_question = {"role": "user", "content": content}
            if message_id == before.id:
                history.append(pending_question)
            continue
        usable = status in _CONTEXT_REPLY_STATUSES or (
            status == Message.Status.INCOMPLETE and finish_reason in _CONTEXT_INCOMPLETE_REASONS
        )
        if usable and content.strip() and pending_question is not None:
            if pending_question["content"].strip():
                history.append(pending_question)
                history.append({"role": "assistant", "content": content})
            pending_question = None
    return history


def estimate_tokens(text: str) -> int:
    """A cautious token estimate without a tokenizer: about 3 UTF-8 bytes a token
    (real tokenizers average nearer 4 for English), plus a little per message."""
    return len(text.encode("utf-8", "replace")) // 3 + 4


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


def _clean_content(content: str) -> str:
    content = storable_text(content).strip()
    if not content:
        raise ValidationError(_("The message is empty."))
    if len(content) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ValidationError(
            _("The message is too long (%(length)d characters; the limit is %(limit)d).")
            % {"length": len(content), "limit": settings.CHAT_MAX_MESSAGE_CHARS}
        )
    return content


def reply_prepare(
    *,
    conversation: Conversation | None,
    action: str,
    content: str = "",
    provider: str = "",
    model: str = "",
    owner: AbstractBaseUser | None = None,
    reply_id: int | None = None,
    show_detail: bool = False,
    system_prompt: str = "",
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> PreparedReply:
    """Check the request, then save what must be saved before asking the model, in one
    short transaction. Nothing is written when anything is refused (ValidationError).

    ``conversation`` None starts a new conversation for ``owner`` with this message: it
    is created only once the message passed every check. Actions: send, a new user
    message; edit, replace the last user message's text (later messages are removed);
    regenerate, remove the replies after the last user message and answer it again;
    retry, answer again the question of the failed reply ``reply_id`` in its place (any
    failed reply, not only the newest); continue, go on with the reply ``reply_id`` cut
    by the token limit or the connection, appending to its text. The provider and model
    (if given) become the conversation's current choice. ``system_prompt``,
    ``temperature`` and ``max_tokens`` are the settings of a new conversation, chosen
    before its first message (ignored for an existing one, which has its own)."""
    if action not in ReplyAction.ALL:
        raise ValidationError(_("Unknown action."))
    if conversation is None and (owner is None or action != ReplyAction.SEND):
        raise ValidationError(_("There is no message to answer yet."))
    provider = provider or (conversation.provider if conversation else "")
    provider = provider or settings.CHAT_DEFAULT_PROVIDER or "local"
    model = model or (conversation.model if conversation else "")
    if provider not in PROVIDER_REGISTRY:
        raise ValidationError(_("Unknown provider “%(name)s”.") % {"name": provider})
    provider_obj = get_provider(provider)
    status = provider_obj.status()
    if not status.usable:
        raise ValidationError(
            _("%(label)s is not available: %(reason)s.")
            % {"label": status.label, "reason": status.reason}
        )
    model = model or (provider_obj.default_model() if conversation is None else "")
    if not model:
        raise ValidationError(_("Choose a model."))
    _check_model(provider_obj, model)
    if action in (ReplyAction.SEND, ReplyAction.EDIT):
        content = _clean_content(content)
    if action in (ReplyAction.RETRY, ReplyAction.CONTINUE) and not reply_id:
        raise ValidationError(_("Which reply? The request names none."))
    context = provider_obj.context_window(model)
    if conversation is None:
        system_prompt = storable_text(system_prompt or "")
        try:
            ChatOptions(system_prompt=system_prompt, temperature=temperature, max_tokens=max_tokens)
        except ProviderError as e:
            raise ValidationError(e.message) from e

    with transaction.atomic():
        if conversation is None:
            conv = Conversation.objects.create(
                owner=owner,
                provider=provider,
                model=model,
                title="",
                system_prompt=system_prompt,
                temperature=temperature,
                max_tokens=max_tokens,
            )
        else:
            conv = Conversation.objects.select_for_update().get(pk=conversation.pk)
        options = ChatOptions(
            system_prompt=conv.system_prompt,
            temperature=conv.temperature,
            max_tokens=conv.max_tokens,
        )
        reply_expire_stale(conversation_id=conv.pk)
        now = timezone.now()
        prefix = ""
        prefix_tokens = 0
        if conv.messages.filter(status=Message.Status.STREAMING).exists() and action != (
            ReplyAction.SEND
        ):
            raise ValidationError(_("Wait for the current reply to finish, or stop it."))
        if action == ReplyAction.SEND:
            user_message = Message.objects.create(
                conversation=conv, role=Message.Role.USER, content=content, created_at=now
            )
            reply = None
        elif action in (ReplyAction.RETRY, ReplyAction.CONTINUE):
            reply = conv.messages.filter(pk=reply_id, role=Message.Role.ASSISTANT).first()
            if reply is None:
                raise ValidationError(_("That reply is not in this conversation."))
            user_message = (
                conv.messages.filter(
                    role=Message.Role.USER, created_at__lte=reply.created_at, id__lt=reply.id
                )
                .order_by("-created_at", "-id")
                .first()
            )
            if user_message is None:
                raise ValidationError(_("There is no message to answer yet."))
            if action == ReplyAction.RETRY:
                if reply.status not in (Message.Status.ERROR, Message.Status.INCOMPLETE):
                    raise ValidationError(_("Only a failed reply can be tried again."))
            else:
                if not (
                    reply.status == Message.Status.INCOMPLETE
                    and reply.finish_reason in CONTINUABLE_REASONS
                    and reply.content.strip()
                ):
                    raise ValidationError(_("Only a reply that was cut off can be continued."))
                prefix = reply.content
                prefix_tokens = reply.output_tokens or 0
        else:
            user_message = (
                conv.messages.filter(role=Message.Role.USER).order_by("-created_at", "-id").first()
            )
            if user_message is None:
                raise ValidationError(_("There is no message to answer yet."))
            conv.messages.filter(
                created_at__gte=user_message.created_at, id__gt=user_message.id
            ).delete()
            if action == ReplyAction.EDIT:
                user_message.content = content
                user_message.save(update_fields=["content"])
            reply = None
        if reply is None:
            reply = Message.objects.create(
                conversation=conv,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                provider=provider,
                model=model,
                created_at=max(now, user_message.created_at),
            )
        else:
            reply.status = Message.Status.STREAMING
            reply.provider, reply.model = provider, model
            reply.error = reply.error_kind = reply.error_detail = reply.finish_reason = ""
            if action == ReplyAction.RETRY:
                reply.content = reply.content_html = reply.reasoning = ""
                reply.input_tokens = reply.output_tokens = reply.reasoning_tokens = None
            reply.save()
        conv.provider, conv.model, conv.updated_at = provider, model, now
        fields = ["provider", "model", "updated_at"]
        new_title = ""
        if not conv.title:
            conv.title = new_title = storable_text(title_from_text(user_message.content))
            fields.append("title")
        conv.save(update_fields=fields)
        history, trimmed = history_fit(
            _context_history(conv, user_message),
            context_tokens=context,
            reserve_tokens=options.max_tokens or min(1024, context // 4),
            system_prompt=options.system_prompt,
        )
        if prefix:
            history += [
                {"role": "assistant", "content": prefix},
                {"role": "user", "content": CONTINUE_PROMPT},
            ]
        if trimmed or reply.context_trimmed:
            reply.context_trimmed = trimmed or None
            Message.objects.filter(pk=reply.pk).update(context_trimmed=reply.context_trimmed)

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
        created_conversation=conversation is None,
        prefix=prefix,
        prefix_output_tokens=prefix_tokens,
        label=provider_obj.label,
        show_detail=show_detail,
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
    reasoning: str = "",
    finish_reason: str = "",
    error: str = "",
    error_kind: str = "",
    error_detail: str = "",
    usage: Usage | None = None,
    ttft_ms: int | None = None,
    duration_ms: int | None = None,
) -> str:
    """Write a reply's outcome (one UPDATE) and return its sanitized HTML."""
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
    }
    if usage is not None:
        fields["input_tokens"] = usage.input_tokens
        fields["output_tokens"] = usage.output_tokens
        fields["reasoning_tokens"] = usage.reasoning_tokens
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
    replies = [
        Message(pk=reply_id, content=storable_text(text)) for reply_id, text in texts.items()
    ]
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


def _outcome_of(
    *,
    text: str,
    reasoned: bool,
    finish: Finish | None,
    label: str,
) -> dict[str, str]:
    """Status, finish reason and the person's message for a stream that ended by itself.
    Complete only when the provider said the model finished normally; with text but
    another reason, incomplete (the text kept, the reason shown); with no text, an error
    that says why."""
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


async def reply_stream(*, prepared: PreparedReply) -> AsyncIterator[bytes]:
    """Relay the provider's reply as SSE bytes and save the outcome. No database
    connection is held while waiting on the upstream.

    Events: ``start``, then ``delta`` (answer text) and ``reasoning`` (the model's
    thinking) in order, then one of ``done`` (status complete, incomplete or stopped,
    with the finish reason and a notice) or ``error``. Whatever goes wrong, in the
    provider or here, the reply never stays "streaming": it ends as an error with its
    partial text saved."""
    started = time.monotonic()
    parts: list[str] = [prepared.prefix] if prepared.prefix else []
    reasoning_parts: list[str] = []
    usage: Usage | None = None
    finish: Finish | None = None
    first_token_at: float | None = None
    heartbeat = settings.CHAT_HEARTBEAT_SECONDS
    checkpoint_every = settings.CHAT_CHECKPOINT_SECONDS
    last_checkpoint = started
    queue: asyncio.Queue[Any] = asyncio.Queue()
    _ACTIVE_STREAMS[prepared.reply_id] = queue
    provider = get_provider(prepared.provider)
    label = prepared.label or provider.label
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

    async def save(status: str, **outcome: str) -> str:
        return await asyncio.shield(
            _save_outcome_patiently(
                prepared.reply_id,
                text="".join(parts),
                reasoning="".join(reasoning_parts),
                status=status,
                usage=usage,
                ttft_ms=ttft_ms(),
                duration_ms=elapsed_ms(),
                **outcome,
            )
        )

    def done_event(status: str, html: str, finish_reason: str) -> bytes:
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
                "reasoning_tokens": usage.reasoning_tokens if usage else None,
                "finish_reason": finish_reason,
                "notice": incomplete_notice(finish_reason)
                if status == Message.Status.INCOMPLETE
                else "",
                "can_continue": status == Message.Status.INCOMPLETE
                and finish_reason in CONTINUABLE_REASONS,
            },
        )

    async def fail(message: str, kind: str, detail: str, finish_reason: str = "") -> bytes:
        # A Continue that failed keeps the reply it was continuing: still cut off, and
        # still continuable, with the error said (Retry would start it over).
        status = Message.Status.ERROR
        if prepared.prefix and "".join(parts).strip():
            status, finish_reason = Message.Status.INCOMPLETE, FinishReason.CUT_OFF
        html = await save(
            status,
            error=message,
            error_kind=kind,
            error_detail=detail,
            finish_reason=finish_reason,
        )
        data: dict[str, Any] = {
            "message": message,
            "message_id": prepared.reply_id,
            "partial_html": html,  # the saved rendering: rendered once, not twice
            "status": status,
            "can_continue": status == Message.Status.INCOMPLETE,
        }
        if prepared.show_detail and detail:
            data["detail"] = detail
        return sse_event("error", data)

    def log_failure(kind: str, detail: str, exc: BaseException | None = None) -> None:
        logger.log(
            logging.ERROR if exc is not None else logging.WARNING,
            "reply %s failed: provider=%s model=%s kind=%s conversation=%s: %s",
            prepared.reply_id,
            prepared.provider,
            prepared.model,
            kind,
            prepared.conversation_id,
            detail,
            exc_info=exc,
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
                "conversation_id": prepared.conversation_id,
                "provider": prepared.provider,
                "model": prepared.model,
                "title": prepared.created_conversation_title,
                "trimmed": prepared.trimmed,
                "trimmed_note": Message(context_trimmed=prepared.trimmed).trimmed_note,
                "continuing": bool(prepared.prefix),
            },
        )
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    item = await queue.get()
            except TimeoutError:
                yield HEARTBEAT
                continue
            try:
                if isinstance(item, TextDelta):
                    if not isinstance(item.text, str):
                        raise TypeError(f"text delta is {type(item.text).__name__}, not str")
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                    text = storable_text(item.text)
                    parts.append(text)
                    yield sse_event("delta", {"text": text})
                    now = time.monotonic()
                    if now - last_checkpoint >= checkpoint_every:
                        last_checkpoint = now
                        _checkpoint_later(prepared.reply_id, "".join(parts))
                elif isinstance(item, ReasoningDelta):
                    if not isinstance(item.text, str):
                        raise TypeError(f"reasoning delta is {type(item.text).__name__}, not str")
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                    thought = storable_text(item.text)
                    reasoning_parts.append(thought)
                    yield sse_event("reasoning", {"text": thought})
                elif isinstance(item, Usage):
                    usage = item
                    if prepared.prefix_output_tokens:  # Continue: the whole reply's tokens
                        usage = Usage(
                            item.input_tokens,
                            item.output_tokens + prepared.prefix_output_tokens,
                            item.reasoning_tokens,
                        )
                elif isinstance(item, Finish):
                    finish = item
                elif item is _END:
                    outcome = _outcome_of(
                        text="".join(parts),
                        reasoned=bool(reasoning_parts) or bool(usage and usage.reasoning_tokens),
                        finish=finish,
                        label=label,
                    )
                    status = outcome.pop("status")
                    if status == Message.Status.ERROR:
                        log_failure(
                            f"empty:{outcome['finish_reason']}", outcome.get("error_detail", "")
                        )
                        yield await fail(
                            outcome["error"],
                            outcome["error_kind"],
                            outcome.get("error_detail", ""),
                            outcome["finish_reason"],
                        )
                        return
                    html = await save(status, **outcome)
                    yield done_event(status, html, outcome["finish_reason"])
                    return
                elif item is _STOP:
                    pump_task.cancel()
                    html = await save(Message.Status.STOPPED)
                    yield done_event(Message.Status.STOPPED, html, "")
                    return
                elif isinstance(item, _Failed):
                    error = item.error
                    if isinstance(error, ProviderError):
                        log_failure(str(error.kind), error.user_message)
                        message = error_for_person(error, label=label, model=prepared.model)
                        yield await fail(message, str(error.kind), error.user_message)
                    else:
                        detail = f"{type(error).__name__}: {error}"
                        log_failure("unexpected", detail, error)
                        yield await fail(
                            unexpected_error_for_person(label=label), "unexpected", detail
                        )
                    return
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                # A bug of ours (or an event we cannot handle): end the reply as an
                # error with its text, never leave it "streaming".
                pump_task.cancel()
                detail = f"{type(exc).__name__}: {exc}"
                log_failure("unexpected", detail, exc)
                yield await fail(unexpected_error_for_person(label=label), "unexpected", detail)
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
