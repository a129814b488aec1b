"""Preparing one reply: check the request, save the person's message and an empty reply
(status streaming), and build the history the model will see, in one short transaction.
The run itself lives in ``runs.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..dbtext import storable_text
from ..models import Conversation, Message
from ..outcomes import CONTINUABLE_REASONS
from ..providers import PROVIDER_REGISTRY, ChatOptions, ProviderError, get_provider
from .conversations import _check_model, title_from_text


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
_CONTEXT_INCOMPLETE_REASONS = (
    Message.FinishReason.LENGTH,
    Message.FinishReason.CUT_OFF,
    Message.FinishReason.INTERRUPTED,
    Message.FinishReason.TIME_LIMIT,
)


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
