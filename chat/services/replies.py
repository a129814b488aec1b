"""Preparing one reply: check the request, save the person's message and an empty reply
(status streaming), and build the history the model will see, in one short transaction.
The run itself lives in ``runs.py``."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from access.services import model_access_for
from usage.budgets import budget_reserve

from ..dbtext import storable_text
from ..models import Attachment, Conversation, Message
from ..outcomes import CONTINUABLE_REASONS
from ..providers import (
    PROVIDER_REGISTRY,
    BaseProvider,
    ChatOptions,
    get_provider,
)
from ..selectors import conversation_tree
from ..tree import ConversationTree
from .attachments import (
    attachment_content,
    attachments_check_model,
    attachments_for_send,
    attachments_link,
)
from .branches import attachments_copy
from .conversations import _check_model, chat_options_checked, title_from_text
from .fallback import FallbackHop, fallback_chain_for, fallback_chain_parse, fallback_hops


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
    prefix_reasoning: str = ""  # Continue: the reasoning the reply already has
    prefix_reasoning_ms: int | None = None  # and how long that thinking took
    label: str = ""  # the provider's label, for messages
    show_detail: bool = False  # the person is staff: errors carry the operator's detail
    # What the person is told beside the reply (a PDF sent as its extracted text).
    notes: list[str] = field(default_factory=list)
    # False for a reply that is not kept (an API call): no message rows, no checkpoints,
    # no followers on other workers; ``reply_id`` is then a negative run number.
    store: bool = True
    # The budget hold for this reply (usage.budgets), settled when its usage is written.
    budget_reservation_id: int | None = None
    user_id: int | None = None  # who asked (metering)
    api_key_id: int | None = None  # the personal API key used, if any
    # Compare: the other replies to the same message, side by side (this one is the first).
    compared: list[PreparedReply] = field(default_factory=list)
    # The models that answer instead, in order, when this one fails before its first
    # token (``fallback.py``): already checked for this person and these files.
    fallbacks: tuple[FallbackHop, ...] = ()
    # Where the reply was asked for, as usage records say: "chat" (the chat page, a
    # temporary chat too) or "api"; "" means "chat" when stored, else "api".
    source: str = ""


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


def _context_history(path_ids: list[int], capabilities: Any = None) -> list[dict[str, Any]]:
    """What the model sees: the messages on ``path_ids`` (the branch from the root down
    to the user message answered, which is last).

    Replies people saw as answers (see ``_CONTEXT_REPLY_STATUSES``) with their question;
    never errors, filtered or refused replies, replies still streaming (another tab's),
    nor the reasoning. A question whose reply failed is left out too once the person has
    moved on (or asked again): it would reach the model twice, or as two user turns in a
    row, which some APIs refuse. The result alternates user/assistant and ends with the
    last message of the path. Other branches never appear: only the path is read."""
    rows = {
        row[0]: row
        for row in Message.objects.filter(pk__in=path_ids).values_list(
            "id", "role", "content", "status", "finish_reason"
        )
    }
    files: dict[int, list[Attachment]] = {}
    for attachment in Attachment.objects.filter(message_id__in=path_ids):
        files.setdefault(attachment.message_id, []).append(attachment)
    last_id = path_ids[-1]
    history: list[dict[str, Any]] = []
    pending_question: dict[str, str] | None = None
    for message_id in path_ids:
        if message_id not in rows:
            continue
        _, role, content, status, finish_reason = rows[message_id]
        if role == Message.Role.USER:
            # A question not followed by a usable answer is replaced by the next one.
            pending_question = {
                "role": "user",
                "content": _user_content(content, files.get(message_id, ()), capabilities),
            }
            if message_id == last_id:
                history.append(pending_question)
            continue
        usable = status in _CONTEXT_REPLY_STATUSES or (
            status == Message.Status.INCOMPLETE and finish_reason in _CONTEXT_INCOMPLETE_REASONS
        )
        if usable and content.strip() and pending_question is not None:
            if pending_question["content"]:
                history.append(pending_question)
                history.append({"role": "assistant", "content": content})
            pending_question = None
    return history


COMPARE_MAX = 4  # models answering one message side by side


def _usable_model(provider: str, model: str, *, new_chat: bool) -> tuple[BaseProvider, str]:
    """The provider object and model for a reply, checked: a registered, usable provider
    and a model it offers (a new chat may leave the model to the provider's default).
    ValidationError with the reason otherwise."""
    if provider not in PROVIDER_REGISTRY:
        raise ValidationError(_("Unknown provider “%(name)s”.") % {"name": provider})
    provider_obj = get_provider(provider)
    status = provider_obj.status()
    if not status.usable:
        raise ValidationError(
            _("%(label)s is not available: %(reason)s.")
            % {"label": status.label, "reason": status.reason}
        )
    model = model or (provider_obj.default_model() if new_chat else "")
    if not model:
        raise ValidationError(_("Choose a model."))
    _check_model(provider_obj, model)
    return provider_obj, model


def _send_parent(tree: ConversationTree, shown: list[int], parent_id: int | None) -> int | None:
    """The message a new one follows: ``parent_id`` (the last message of the branch the
    page shows) when given, else the end of the branch last looked at. A question that
    several models answered side by side waits for the person to pick one."""
    if parent_id is not None:
        if parent_id not in tree:
            raise ValidationError(
                _("The message you answered is no longer in this conversation. Reload the page.")
            )
    else:
        parent_id = shown[-1] if shown else None
    if parent_id is not None and tree.is_compare(parent_id):
        raise ValidationError(
            _("Pick the reply to go on with first (“Continue with this one” under it).")
        )
    return parent_id


def _regenerate_question(tree: ConversationTree, shown: list[int], reply_id: int | None) -> int:
    """The question a regenerated reply answers: the parent of reply ``reply_id``, or of
    the last reply of the branch shown (or its last question when it has no reply)."""
    if reply_id is not None:
        if tree.role.get(reply_id) != Message.Role.ASSISTANT:
            raise ValidationError(_("That reply is not in this conversation."))
        question = tree.parent[reply_id]
    else:
        question = next(
            (
                tree.parent[i] if tree.role[i] == Message.Role.ASSISTANT else i
                for i in reversed(shown)
            ),
            None,
        )
    if question is None or tree.role.get(question) != Message.Role.USER:
        raise ValidationError(_("There is no message to answer yet."))
    return question


def _fitted_history(
    path: list[int], provider_obj: BaseProvider, model: str, options: ChatOptions
) -> tuple[list[dict[str, Any]], int]:
    """The history of ``path`` as ``model`` reads it (its capabilities decide how files
    go), trimmed to its context with room for the reply: (history, how many left out)."""
    return _fitted(
        _context_history(path, provider_obj.capabilities(model)), provider_obj, model, options
    )


def _fitted(
    history: list[dict[str, Any]], provider_obj: BaseProvider, model: str, options: ChatOptions
) -> tuple[list[dict[str, Any]], int]:
    """``history`` trimmed to ``model``'s context with room for the reply (its max
    tokens, else a quarter of the context up to 1,024): (history, how many left out)."""
    context = provider_obj.context_window(model)
    return history_fit(
        history,
        context_tokens=context,
        reserve_tokens=options.max_tokens or min(1024, context // 4),
        system_prompt=options.system_prompt,
    )


def _user_content(
    text: str, attachments: Sequence[Attachment], capabilities: Any
) -> str | list[dict[str, Any]]:
    """A user turn's content for a model with ``capabilities``: ``attachment_content``,
    except that images a model cannot read (an earlier turn's, sent to another model)
    are named in a line of text instead of sent."""
    if getattr(capabilities, "images", None) is not False:
        return attachment_content(text=text, attachments=attachments, capabilities=capabilities)
    left_out = [a for a in attachments if a.kind == Attachment.Kind.IMAGE]
    kept = [a for a in attachments if a.kind != Attachment.Kind.IMAGE]
    content = attachment_content(text=text, attachments=kept, capabilities=capabilities)
    if not left_out:
        return content
    names = ", ".join(f"“{a.name}”" for a in left_out)
    line = f"[Image {names} left out: this model cannot see images.]"
    if isinstance(content, str):
        return f"{line}\n\n{content}" if content else line
    return [{"type": "text", "text": line}, *content]


def estimate_tokens(text: str) -> int:
    """A cautious token estimate without a tokenizer: about 3 UTF-8 bytes a token
    (real tokenizers average nearer 4 for English), plus a little per message."""
    return len(text.encode("utf-8", "replace")) // 3 + 4


# A cautious allowance per image or PDF page (providers count 85 to ~1,600 tokens an
# image and ~1,500-3,000 a PDF page); unknown sizes use the larger figures.
IMAGE_TOKENS = 1600
PDF_PAGE_TOKENS = 3000


def content_tokens(content: str | list[dict[str, Any]]) -> int:
    """The estimated tokens of a message's ``content``: text as ``estimate_tokens``, each
    image ``IMAGE_TOKENS``, each PDF (a ``file`` part) by the size of its data."""
    if isinstance(content, str):
        return estimate_tokens(content)
    total = 4
    for part in content:
        kind = part.get("type")
        if kind == "text":
            total += estimate_tokens(part.get("text", ""))
        elif kind == "image_url":
            total += IMAGE_TOKENS
        else:
            data = part.get("file", {}).get("file_data", "")
            # About 100 KB of base64 a page for a typical PDF.
            total += PDF_PAGE_TOKENS * max(1, len(data) // 100_000)
    return total


def history_tokens(history: list[dict[str, Any]]) -> int:
    """The estimated tokens of a whole history (``content_tokens`` of each message)."""
    return sum(content_tokens(m["content"]) for m in history)


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
        cost = content_tokens(message["content"])
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
            % {"needed": content_tokens(history[-1]["content"]), "available": max(budget, 0)}
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
    message_id: int | None = None,
    parent_id: int | None = None,
    compare: list[tuple[str, str]] | None = None,
    attachment_ids: list[int] | None = None,
    show_detail: bool = False,
    system_prompt: str = "",
    temperature: float | None = None,
    max_tokens: int | None = None,
    reasoning_effort: str | None = None,
    thinking_budget: int | None = None,
    fallback_models: list[str] | None = None,
) -> PreparedReply:
    """Check the request, then save what must be saved before asking the model, in one
    short transaction. Nothing is written when anything is refused (ValidationError).

    ``conversation`` None starts a new conversation for ``owner`` with this message: it
    is created only once the message passed every check. Conversations are trees (see
    ``chat.tree``). Actions: send, a new user message after ``parent_id`` (default: the
    end of the branch last shown); edit, a new message beside the user message
    ``message_id`` (default: the branch's last) with ``content``, answered afresh: the
    old one and its branch stay; regenerate, a new reply beside reply ``reply_id``
    (default: the branch's last); retry, answer again the question of the failed reply
    ``reply_id`` in its place; continue, go on with the reply ``reply_id`` cut by the
    token limit or the connection, appending to its text. The new reply becomes the
    branch shown. The provider and model (if given) become the conversation's current
    choice. ``compare`` (send only): 2 to 4 (provider, model) pairs that all answer the
    new message side by side, each reply a sibling; the first is returned, the others in
    its ``compared``, and the question stays the branch shown until the person picks one
    (``branch_show``). ``attachment_ids`` (send, edit): the person's uploads to put on the
    new message; every file on the branch must suit each answering model (an image to a
    model that reads none is refused, naming models that can). ``system_prompt``,
    ``temperature``, ``max_tokens``, ``reasoning_effort``, ``thinking_budget`` and
    ``fallback_models`` ("provider/model" strings) are the settings of a new
    conversation, chosen before its first message (ignored for an existing one, which
    has its own). A reply (not compared, not a Continue) gets the fallback chain of the
    conversation or the admin's for its model (``fallback.py``), each model checked."""
    if action not in ReplyAction.ALL:
        raise ValidationError(_("Unknown action."))
    if conversation is None and (owner is None or action != ReplyAction.SEND):
        raise ValidationError(_("There is no message to answer yet."))
    provider = provider or (conversation.provider if conversation else "")
    provider = provider or settings.CHAT_DEFAULT_PROVIDER or "local"
    model = model or (conversation.model if conversation else "")
    if compare is not None:
        if action != ReplyAction.SEND:
            raise ValidationError(_("Only a new message can be sent to several models."))
        compare = list(dict.fromkeys(compare))
        if not 2 <= len(compare) <= COMPARE_MAX:
            raise ValidationError(
                _("Choose from 2 to %(max)d different models to compare.") % {"max": COMPARE_MAX}
            )
        provider, model = compare[0]
    provider_obj, model = _usable_model(provider, model, new_chat=conversation is None)
    choices = [(provider, model, provider_obj)]
    for other_provider, other_model in (compare or [])[1:]:
        other_obj, other_model = _usable_model(other_provider, other_model, new_chat=False)
        choices.append((other_provider, other_model, other_obj))
    # The person's groups may be limited to some models (access rules, in the admin).
    access = model_access_for(user=owner or conversation.owner)  # type: ignore[union-attr]
    for choice_provider, choice_model, _obj in choices:
        reason = access.reason(choice_provider, choice_model)
        if reason:
            raise ValidationError(reason)
    attachment_ids = list(attachment_ids or [])
    if attachment_ids and action not in (ReplyAction.SEND, ReplyAction.EDIT):
        raise ValidationError(_("Files can only be attached to a new or edited message."))
    if action in (ReplyAction.SEND, ReplyAction.EDIT):
        # A message may be files alone (an image to describe, a PDF to summarise).
        if not (attachment_ids and not storable_text(content).strip()):
            content = _clean_content(content)
        else:
            content = ""
    if action in (ReplyAction.RETRY, ReplyAction.CONTINUE) and not reply_id:
        raise ValidationError(_("Which reply? The request names none."))
    provider = choices[0][0]
    if conversation is None:
        system_prompt = storable_text(system_prompt or "")
        chat_options_checked(
            system_prompt=system_prompt,
            temperature=temperature,
            max_tokens=max_tokens,
            reasoning_effort=reasoning_effort or None,
            thinking_budget=thinking_budget,
        )
        chain_chosen = []
        for fallback_provider, fallback_model in fallback_chain_parse(fallback_models or []):
            reason = access.reason(fallback_provider, fallback_model)
            if reason:
                raise ValidationError(reason)
            chain_chosen.append(f"{fallback_provider}/{fallback_model}")

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
                reasoning_effort=reasoning_effort or None,
                thinking_budget=thinking_budget,
                fallback_models=chain_chosen or None,
            )
        else:
            conv = Conversation.objects.select_for_update().get(pk=conversation.pk)
        options = ChatOptions(
            system_prompt=conv.system_prompt,
            temperature=conv.temperature,
            max_tokens=conv.max_tokens,
            reasoning_effort=conv.reasoning_effort or None,
            thinking_budget=conv.thinking_budget,
        )
        reply_expire_stale(conversation_id=conv.pk)
        now = timezone.now()
        prefix = ""
        prefix_tokens = 0
        prefix_reasoning, prefix_reasoning_ms = "", None
        if conv.messages.filter(status=Message.Status.STREAMING).exists() and action != (
            ReplyAction.SEND
        ):
            raise ValidationError(_("Wait for the current reply to finish, or stop it."))
        tree = conversation_tree(conversation_id=conv.pk)
        shown = tree.thread(conv.current_leaf_id)
        if action == ReplyAction.SEND:
            parent_id = _send_parent(tree, shown, parent_id)
            user_message = Message.objects.create(
                conversation=conv,
                role=Message.Role.USER,
                content=content,
                created_at=now,
                parent_id=parent_id,
            )
            path = [*(tree.path_to(parent_id) if parent_id else []), user_message.pk]
            reply = None
        elif action in (ReplyAction.RETRY, ReplyAction.CONTINUE):
            reply = conv.messages.filter(pk=reply_id, role=Message.Role.ASSISTANT).first()
            if reply is None:
                raise ValidationError(_("That reply is not in this conversation."))
            question_id = reply.parent_id
            if question_id is None or tree.role.get(question_id) != Message.Role.USER:
                raise ValidationError(_("There is no message to answer yet."))
            user_message = conv.messages.get(pk=question_id)
            path = tree.path_to(question_id)
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
                prefix_reasoning, prefix_reasoning_ms = reply.reasoning, reply.reasoning_ms
        elif action == ReplyAction.REGENERATE:
            # A new reply beside the one regenerated (any reply, not only the last): the
            # old one stays, one arrow away.
            question_id = _regenerate_question(tree, shown, reply_id)
            user_message = conv.messages.get(pk=question_id)
            path = tree.path_to(question_id)
            reply = None
        else:
            # An edit is a new message beside the one edited (any of the person's
            # messages); the old one and everything after it stay on their branch.
            edited_id = message_id or next(
                (i for i in reversed(shown) if tree.role[i] == Message.Role.USER), None
            )
            if edited_id is None or tree.role.get(edited_id) != Message.Role.USER:
                raise ValidationError(_("That message is not in this conversation."))
            parent_id = tree.parent[edited_id]
            user_message = Message(
                conversation=conv,
                role=Message.Role.USER,
                content=content,
                created_at=now,
                parent_id=parent_id,
            )
            user_message.save(root=parent_id is None)
            attachments_copy(source_message_id=edited_id, target_message_id=user_message.pk)
            path = [*(tree.path_to(parent_id) if parent_id else []), user_message.pk]
            reply = None
        if attachment_ids:
            attachments_link(
                attachments=attachments_for_send(owner=conv.owner, ids=attachment_ids),
                message_id=user_message.pk,
            )
        # The question's own files must suit every answering model (an image to a model
        # that reads none is refused); earlier images a model cannot read are left out
        # of its history, and the person is told.
        on_path = list(Attachment.objects.filter(message_id__in=path))
        asked = [a for a in on_path if a.message_id == user_message.pk]
        earlier_images = [
            a for a in on_path if a.message_id != user_message.pk and a.kind == "image"
        ]
        notes: list[str] = []
        for choice_provider, choice_model, choice_obj in choices:
            found = attachments_check_model(
                attachments=asked, provider=choice_provider, model=choice_model
            )
            if earlier_images and choice_obj.capabilities(choice_model).images is False:
                found.append(
                    _(
                        "Earlier images in this conversation are left out: %(model)s "
                        "cannot read images."
                    )
                    % {"model": choice_model}
                )
            notes += [note for note in found if note not in notes]
        if reply is None:
            reply = Message.objects.create(
                conversation=conv,
                role=Message.Role.ASSISTANT,
                status=Message.Status.STREAMING,
                provider=provider,
                model=model,
                created_at=max(now, user_message.created_at),
                parent=user_message,
            )
        else:
            reply.status = Message.Status.STREAMING
            reply.provider, reply.model = provider, model
            reply.error = reply.error_kind = reply.error_detail = reply.finish_reason = ""
            reply.fallback = None
            if action == ReplyAction.RETRY:
                reply.content = reply.content_html = reply.reasoning = ""
                reply.input_tokens = reply.output_tokens = reply.reasoning_tokens = None
                reply.reasoning_ms = None
            reply.save()
        conv.provider, conv.model, conv.updated_at = provider, model, now
        conv.current_leaf_id = reply.pk
        fields = ["provider", "model", "updated_at", "current_leaf"]
        new_title = ""
        if not conv.title:
            conv.title = new_title = storable_text(title_from_text(user_message.content))
            fields.append("title")
        conv.save(update_fields=fields)
        history, trimmed = _fitted_history(path, provider_obj, model, options)
        if prefix:
            history += [
                {"role": "assistant", "content": prefix},
                {"role": "user", "content": CONTINUE_PROMPT},
            ]
        if trimmed or reply.context_trimmed:
            reply.context_trimmed = trimmed or None
            Message.objects.filter(pk=reply.pk).update(context_trimmed=reply.context_trimmed)
        # Budgets (usage.budgets): refused with the limit and its reset time, nothing
        # saved (BudgetExceeded is a ValidationError); else a hold until the reply ends.
        budget_owner = owner or conv.owner
        reservation = budget_reserve(
            user=budget_owner,
            provider=provider,
            model=model,
            input_tokens=history_tokens(history),
            max_output_tokens=options.max_tokens,
        )
        prepared = PreparedReply(
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
            prefix_reasoning=prefix_reasoning,
            prefix_reasoning_ms=prefix_reasoning_ms,
            label=provider_obj.shown_label(),
            show_detail=show_detail,
            notes=notes,
            user_id=conv.owner_id,
            budget_reservation_id=reservation.id,
        )
        if len(choices) == 1 and action != ReplyAction.CONTINUE:
            chain = fallback_chain_for(
                provider=provider, model=model, conversation_chain=conv.fallback_models
            )
            if chain:
                prepared.fallbacks = fallback_hops(
                    chain,
                    access=access,
                    usable=lambda p, m: _usable_model(p, m, new_chat=False)[0],
                    files_fit=lambda p, m: attachments_check_model(
                        attachments=asked, provider=p, model=m
                    ),
                    history_for=lambda obj, m: _fitted_history(path, obj, m, options)[0],
                )
        if len(choices) > 1:
            # Side by side: a sibling reply per other model, each with the history that
            # fits its own context; the question is the branch shown until one is picked.
            for other_provider, other_model, other_obj in choices[1:]:
                other_history, other_trimmed = _fitted_history(
                    path, other_obj, other_model, options
                )
                other_hold = budget_reserve(
                    user=budget_owner,
                    provider=other_provider,
                    model=other_model,
                    input_tokens=history_tokens(other_history),
                    max_output_tokens=options.max_tokens,
                )
                other = Message.objects.create(
                    conversation=conv,
                    role=Message.Role.ASSISTANT,
                    status=Message.Status.STREAMING,
                    provider=other_provider,
                    model=other_model,
                    created_at=reply.created_at,
                    parent=user_message,
                    context_trimmed=other_trimmed or None,
                )
                prepared.compared.append(
                    replace(
                        prepared,
                        reply_id=other.pk,
                        provider=other_provider,
                        model=other_model,
                        history=other_history,
                        trimmed=other_trimmed,
                        label=other_obj.shown_label(),
                        created_conversation_title="",
                        created_conversation=False,
                        notes=[],
                        compared=[],
                        budget_reservation_id=other_hold.id,
                    )
                )
            Conversation.objects.filter(pk=conv.pk).update(current_leaf_id=user_message.pk)
    return prepared


# Runs that are not stored (an API call, a temporary chat) are numbered -1, -2...: the
# hub keeps runs by reply id, so every front door takes its numbers from this one count.
_unstored_runs = itertools.count(1)

# A temporary chat's history as the page sends it: at most this many turns.
TEMPORARY_MAX_MESSAGES = 200
# A reply in that history may be longer than a question (CHAT_MAX_MESSAGE_CHARS) by this.
TEMPORARY_REPLY_CHARS_FACTOR = 4


def unstored_run_number() -> int:
    """A new number for a run that is not stored: negative, never used before in this
    process, so it never collides with a stored reply's id nor another unstored run."""
    return -next(_unstored_runs)


def _temporary_history(messages: object) -> list[dict[str, str]]:
    """Check a temporary chat's turns (``[{"role": "user"|"assistant", "content": str}]``,
    oldest first) and return them cleaned. They alternate, starting and ending with the
    person's; each question follows the limits of a sent message, each reply may be up to
    ``TEMPORARY_REPLY_CHARS_FACTOR`` times longer. ValidationError naming the turn
    (numbered from 1) otherwise."""
    if not isinstance(messages, list) or not messages:
        raise ValidationError(_("There is no message to answer yet."))
    if len(messages) > TEMPORARY_MAX_MESSAGES:
        raise ValidationError(
            _(
                "This temporary chat is too long (%(count)d messages; the limit is %(limit)d). "
                "Start a new temporary chat."
            )
            % {"count": len(messages), "limit": TEMPORARY_MAX_MESSAGES}
        )
    reply_limit = settings.CHAT_MAX_MESSAGE_CHARS * TEMPORARY_REPLY_CHARS_FACTOR
    history: list[dict[str, str]] = []
    for number, message in enumerate(messages, 1):
        expected = "user" if number % 2 else "assistant"
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in ("user", "assistant") or not isinstance(content, str):
            raise ValidationError(
                _(
                    "Message %(number)d is not a message: each needs a role (user or "
                    "assistant) and its text as content."
                )
                % {"number": number}
            )
        if role != expected:
            wrong = (
                _("Message %(number)d should be yours")
                if expected == "user"
                else _("Message %(number)d should be the model's reply")
            )
            raise ValidationError(
                _("%(wrong)s: the messages must alternate, starting and ending with yours.")
                % {"wrong": wrong % {"number": number}}
            )
        if role == "user":
            try:
                content = _clean_content(content)
            except ValidationError as e:
                raise ValidationError(
                    _("Message %(number)d: %(reason)s")
                    % {"number": number, "reason": " ".join(e.messages)}
                ) from None
        else:
            content = storable_text(content)
            if not content.strip():
                raise ValidationError(
                    _("Message %(number)d: the reply is empty.") % {"number": number}
                )
            if len(content) > reply_limit:
                raise ValidationError(
                    _(
                        "Message %(number)d: the reply is too long (%(length)d characters; "
                        "the limit is %(limit)d)."
                    )
                    % {"number": number, "length": len(content), "limit": reply_limit}
                )
        history.append({"role": role, "content": content})
    if history[-1]["role"] != "user":
        raise ValidationError(_("The last message must be yours: there is nothing to answer."))
    return history


def reply_prepare_temporary(
    *,
    owner: AbstractBaseUser,
    messages: object,
    provider: str = "",
    model: str = "",
    show_detail: bool = False,
    system_prompt: str = "",
    temperature: float | None = None,
    max_tokens: int | None = None,
    reasoning_effort: str | None = None,
    thinking_budget: int | None = None,
) -> PreparedReply:
    """A reply in a temporary chat: ``messages`` is the whole chat so far as the page keeps
    it (see ``_temporary_history``), the last one the question. Checked like a sent message
    (the provider and model, the person's access rules, the sizes, the settings), fitted
    to the model's context (the oldest turns left out, ``trimmed`` says how many), and the
    person's budgets hold its place (``BudgetExceeded``, a ValidationError, when a limit is
    reached). Writes nothing but that hold: the result is a ``PreparedReply`` with
    ``store=False`` (no conversation, no message rows; ``reply_id`` is a negative run
    number), which the hub runs like an API call. ValidationError with the reason when
    anything is refused."""
    provider = provider or settings.CHAT_DEFAULT_PROVIDER or "local"
    provider_obj, model = _usable_model(provider, model, new_chat=True)
    reason = model_access_for(user=owner).reason(provider, model)
    if reason:
        raise ValidationError(reason)
    history = _temporary_history(messages)
    if not isinstance(system_prompt, str):
        raise ValidationError(_("The system prompt must be text."))
    options = chat_options_checked(
        system_prompt=storable_text(system_prompt),
        temperature=temperature,
        max_tokens=max_tokens,
        reasoning_effort=reasoning_effort or None,
        thinking_budget=thinking_budget,
    )
    history, trimmed = _fitted(history, provider_obj, model, options)
    reservation = budget_reserve(
        user=owner,
        provider=provider,
        model=model,
        input_tokens=history_tokens(history),
        max_output_tokens=options.max_tokens,
    )
    return PreparedReply(
        conversation_id=0,
        user_message_id=0,
        reply_id=unstored_run_number(),
        provider=provider,
        model=model,
        options=options,
        history=history,
        trimmed=trimmed,
        label=provider_obj.shown_label(),
        show_detail=show_detail,
        store=False,
        source="chat",
        budget_reservation_id=reservation.id,
        user_id=owner.pk,
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
